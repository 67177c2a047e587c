"""Workload 1: saxpy + sum of squares, float32.

    z = a * x + y;  loss = sum(z ** 2);  gradient of loss w.r.t. x and a.

difsci: one kernel written as API.md shows (``loss[None] += ...`` in the
parallel loop), the gradient from ``ds.Tape``.  Reference: hand-written
numba — a prange reduction for the forward pass, and a backward pass that
reads the stored ``z`` and *writes* (not accumulates) ``x_bar``.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

import difsci as ds

from ..harness import Case, assert_close

SIZES = {"tiny": 1000, "quick": 1_000_000, "full": 10_000_000}


@ds.kernel
def saxpy_sumsq(a: ds.f32[()], x: ds.f32[:], y: ds.f32[:], z: ds.f32[:], loss: ds.f32[()]):
    for i in range(x.shape[0]):
        v = a[None] * x[i] + y[i]
        z[i] = v
        loss[None] += v * v


@njit(parallel=True, error_model="numpy", cache=True)
def ref_forward(a, x, y, z):
    """z = a x + y; return sum(z**2) (float32 accumulation, as difsci's)."""
    s = np.float32(0.0)
    for i in prange(x.shape[0]):
        v = a * x[i] + y[i]
        z[i] = v
        s += v * v
    return s


@njit(parallel=True, error_model="numpy", cache=True)
def ref_backward(a, x, z, x_bar):
    """x_bar = d loss / d x (written, not accumulated); return d loss / d a."""
    s = np.float32(0.0)
    for i in prange(x.shape[0]):
        g = np.float32(2.0) * z[i]
        x_bar[i] = g * a
        s += g * x[i]
    return s


@njit(parallel=True, error_model="numpy", cache=True)
def ref_backward_accumulate(a, x, y, x_bar):
    """difsci's semantics by hand: recompute z, *accumulate* into x_bar (zeroed by the caller)."""
    s = np.float32(0.0)
    for i in prange(x.shape[0]):
        g = np.float32(2.0) * (a * x[i] + y[i])
        x_bar[i] += g * a
        s += g * x[i]
    return s


def make_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n).astype(np.float32)
    y = rng.uniform(-1, 1, n).astype(np.float32)
    return np.float32(0.75), x, y


def cases(size: str, peers: dict | None = None) -> list[Case]:
    n = SIZES[size]
    a0, x0, y0 = make_data(n)
    label = f"1 saxpy+sumsq {n:,} f32"

    # ---- difsci, as a user writes it
    a = ds.zeros((), dtype=np.float32, requires_grad=True)
    a.fill(a0)
    x = ds.array(x0, requires_grad=True)
    y = ds.array(y0)
    x0, y0 = x.numpy(), y.numpy()        # every implementation reads the same input buffers
    z = ds.zeros(n, dtype=np.float32)
    loss = ds.zeros((), dtype=np.float32, requires_grad=True)

    def ds_forward():
        loss.fill(0.0)
        saxpy_sumsq(a, x, y, z, loss)
        return float(loss.numpy()), z

    def ds_fwd_bwd():
        for arr in (a, x, loss):
            arr.zero_grad()
        loss.fill(0.0)
        with ds.Tape() as tape:
            saxpy_sumsq(a, x, y, z, loss)
        tape.backward(loss)
        return float(loss.numpy()), float(a.grad.numpy()), x.grad

    # ---- hand-written numba
    rz = np.empty(n, np.float32)
    rxb = np.empty(n, np.float32)

    def ref_fwd():
        return float(ref_forward(a0, x0, y0, rz)), rz

    def ref_fwd_bwd():
        s = ref_forward(a0, x0, y0, rz)
        ga = ref_backward(a0, x0, rz, rxb)
        return float(s), float(ga), rxb

    rxa = np.zeros(n, np.float32)

    def acc_fwd_bwd():
        s = ref_forward(a0, x0, y0, rz)
        rxa.fill(0.0)
        ga = ref_backward_accumulate(a0, x0, y0, rxa)
        return float(s), float(ga), rxa

    z64 = np.float64(a0) * x0 + y0.astype(np.float64)
    truth = float(np.sum(z64 ** 2))
    truth_ga = float(np.sum(2.0 * z64 * x0))

    # Sums of 10M float32 terms accumulated sequentially in float32 (what `loss[None] += v * v`
    # means, and what the reference does too) are off by ~1e-3..1e-2 relative; pairwise sums
    # (jax) are not.  So sums are checked against the float64 truth at 5e-2, and the relative
    # error is shown in the table's note column.
    def err_note(case, k, what, got, want):
        rel = abs(got - want) / abs(want)
        case.notes[k] = (case.notes.get(k, "") + f" {what} rel.err vs f64 {rel:.1e}").strip()

    def verify_fwd(res):
        want_z = res["numba"][1]
        for k, (got_loss, got_z) in res.items():
            assert_close(f"{k}: z", got_z, want_z, rtol=1e-6)
            assert_close(f"{k}: loss vs float64 truth", got_loss, truth, rtol=5e-2)
            err_note(cs[0], k, "loss", got_loss, truth)

    def verify_bwd(res):
        want = res["numba"]
        for k, got in res.items():
            assert_close(f"{k}: loss vs float64 truth", got[0], truth, rtol=5e-2)
            assert_close(f"{k}: d loss/d a vs float64 truth", got[1], truth_ga, rtol=5e-2)
            assert_close(f"{k}: d loss/d x", got[2], want[2], rtol=1e-5)
            err_note(cs[1], k, "dL/da", got[1], truth_ga)

    # ---- where the backward time goes (no results to compare: the parts are verified above)
    tape_p = ds.Tape()
    loss.fill(0.0)
    with tape_p:
        saxpy_sumsq(a, x, y, z, loss)

    def ds_zero():
        for arr in (a, x, loss):
            arr.zero_grad()

    def ds_bwd():
        ds_zero()
        tape_p.backward(loss)

    parts = {"numba backward": lambda: ref_backward(a0, x0, rz, rxb), "difsci: zero_grad + backward": ds_bwd,
             "difsci: zero_grad only": ds_zero}

    fwd = {"numba": ref_fwd, "difsci": ds_forward}
    fb = {"numba": ref_fwd_bwd, "difsci": ds_fwd_bwd, "numba, difsci's semantics": acc_fwd_bwd}
    if peers and "jax" in peers:
        jf, jfb = peers["jax"].saxpy(a0, x0, y0)
        fwd["jax"] = jf
        fb["jax"] = jfb
    cs = [
        Case(label, "forward", fwd, ref="numba", target=1.2, verify=verify_fwd),
        Case(label, "fwd+bwd (Tape)", fb, ref="numba", target=1.3, verify=verify_bwd,
             notes={"difsci": "incl. zero_grad of a, x, loss;",
                    "numba, difsci's semantics": "zero x_bar, then x_bar += (as a Tape does);"}),
        Case(label, "backward parts", parts, ref="numba backward", target=None, verify=None),
    ]
    return cs
