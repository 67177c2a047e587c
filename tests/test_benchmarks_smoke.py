"""Smoke tests of benchmarks/: every workload at a tiny size, on the cpu backend.

Each implementation (difsci per-step launches, difsci ``ds.serial``, the
what-if variants, the hand-written numba reference) runs once and its
numbers must equal the reference's (the workloads' own ``verify``).  No
timing is asserted.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import difsci as ds
from benchmarks import harness
from benchmarks.workloads import mass_spring, pinn, saxpy, scatter, stencil, wave

WORKLOADS = {"saxpy": saxpy, "stencil": stencil, "scatter": scatter, "wave": wave, "mass_spring": mass_spring,
             "pinn": pinn}


@pytest.fixture(autouse=True)
def _cpu_backend():
    from difsci.config import config
    saved = config.backend
    ds.init(backend="cpu")
    yield
    ds.init(backend=saved)


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_workload_matches_reference(name):
    cases = WORKLOADS[name].cases("tiny")
    assert cases
    for case in cases:
        assert any(k.startswith("difsci") for k in case.impls) and case.ref in case.impls
        outputs = harness.verify_case(case)           # raises on an exception or a mismatch
        assert set(outputs) == set(case.impls)


def test_wave_gradient_is_nontrivial_and_checked():
    """The wave verification really compares gradients: a perturbed result must fail."""
    fb = next(c for c in wave.cases("tiny") if c.variant.startswith("fwd+bwd"))
    outputs = harness.verify_case(fb)
    loss, g0, g1 = outputs["difsci"]
    assert np.max(np.abs(g1)) > 0
    outputs["difsci"] = (loss, g0, g1 * (1 + 1e-6))
    with pytest.raises(harness.ResultMismatch):
        fb.verify(outputs)


def test_assert_close_rejects_nan_and_shape():
    with pytest.raises(harness.ResultMismatch):
        harness.assert_close("x", np.array([np.nan]), np.array([1.0]))
    with pytest.raises(harness.ResultMismatch):
        harness.assert_close("x", np.zeros(2), np.zeros(3))
    assert harness.assert_close("x", np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0


def test_run_case_interleaves_and_reports_medians():
    calls = []
    case = harness.Case("w", "v", {"a": lambda: calls.append("a") or 1.0, "b": lambda: calls.append("b") or 1.0},
                        ref="a", target=1.2, verify=lambda res: harness.assert_close("r", res["b"], res["a"]))
    res = harness.run_case(case, repeats=4, warmup=1)
    assert set(res.median) == {"a", "b"} and res.rounds == 4
    timed = calls[2:]
    assert timed[:2] == ["a", "b"] and timed[2:4] == ["b", "a"]     # the order rotates every round
    rows = harness.table_rows([res])
    assert [r[2] for r in rows] == ["a", "b"]


def test_run_case_fails_loudly_on_wrong_numbers():
    case = harness.Case("w", "v", {"ref": lambda: np.ones(3), "difsci": lambda: np.ones(3) * 1.01}, ref="ref",
                        verify=lambda res: harness.assert_close("out", res["difsci"], res["ref"], rtol=1e-6))
    with pytest.raises(harness.ResultMismatch):
        harness.run_case(case, repeats=1)


def test_launch_overhead_case_verifies():
    from benchmarks import startup
    harness.verify_case(startup.launch_case(quick=True))


@pytest.mark.parametrize("peer", ["torch", "jax"])
def test_pinn_peer_matches_difsci(peer):
    """The PINN step of a peer framework computes difsci's loss and weight gradient (skipped if not installed)."""
    pytest.importorskip(peer)
    from benchmarks import peers
    found = peers.available((peer,))
    assert peer in found, f"{peer} imports but benchmarks/peers/{peer}_peer.py does not"
    case = pinn.cases("tiny", found)[0]
    assert set(case.impls) == {"difsci", peer}
    harness.verify_case(case)
