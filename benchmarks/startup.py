"""Start-up and per-launch costs.

* cold compile: a fresh process with fresh, empty ``DIFSCI_CACHE_DIR`` and
  ``NUMBA_CACHE_DIR`` launches a small stencil kernel (the first call
  generates, writes and compiles it), then runs its adjoint (ditto);
* cached start: the same program again in a new process with the now-warm
  caches — the time from spawning the process to the first result, and that
  minus the time a process takes to spawn and ``import difsci``;
* the floor: the same stencil as a ``cache=True`` numba function, cached;
* per-launch overhead: a 1-element kernel launched by difsci (with and
  without an active Tape) vs the same prange function called directly.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numba import njit, prange

import difsci as ds

from .harness import Case, assert_close

CHILD = Path(__file__).with_name("startup_child.py")


def _spawn(mode: str, env: dict) -> tuple[float, float, dict]:
    """(seconds from spawn to the child's first result, seconds to exit, the child's report)."""
    t0 = time.time()
    p = subprocess.run([sys.executable, str(CHILD), mode], env=env, capture_output=True, text=True,
                       timeout=600, check=False)
    t_end = time.time()
    if p.returncode != 0:
        raise RuntimeError(f"start-up child ({mode}) failed:\n{p.stderr[-2000:]}")
    rep = json.loads(p.stdout.strip().splitlines()[-1])
    first = rep.get("t_first", rep.get("t_done"))
    return first - t0, t_end - t0, rep


def _env(cache: Path) -> dict:
    env = dict(os.environ)
    env["DIFSCI_CACHE_DIR"] = str(cache / "difsci")
    env["NUMBA_CACHE_DIR"] = str(cache / "numba")
    env.pop("DIFSCI_DUMP", None)
    # Python's default: modules are loaded from their bytecode caches (this machine's environment sets
    # PYTHONDONTWRITEBYTECODE=1, which makes every start compile difsci's modules from source: ~30 ms more)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def measure_startup(quick: bool) -> list[dict]:
    """Rows ``{metric, value (s), target (s) or None, note}``."""
    n_cold = 1 if quick else 3
    n_warm = 2 if quick else 7
    cold_fwd, cold_adj, cold_total = [], [], []
    with tempfile.TemporaryDirectory(prefix="difsci_bench_start_") as tmp:
        tmp = Path(tmp)
        for r in range(n_cold):
            env = _env(tmp / f"cold{r}")
            first, _total, rep = _spawn("difsci", env)
            cold_fwd.append(rep["first_call_s"])
            cold_adj.append(rep["adjoint_first_call_s"])
            cold_total.append(first)
            if abs(rep["result"] - 62 * 62) > 1e-9:      # interior of ones stays 1: it really ran
                raise RuntimeError(f"start-up child computed {rep['result']}, expected {62 * 62}")
        warm = _env(tmp / "cold0")
        numba_env = _env(tmp / "numba")
        _spawn("numba", numba_env)          # compile the numba floor once
        to_first, totals, inproc, imports, imp_only, nb_first, nb_call = [], [], [], [], [], [], []
        nb_import = []
        _spawn("import", warm)              # write the bytecode caches (pip does it at install)
        for _ in range(n_warm):             # interleaved
            f, t, rep = _spawn("difsci", warm)
            to_first.append(f)
            totals.append(t)
            inproc.append(rep["first_call_s"])
            nb_import.append(rep["numba_import_s"])
            f2, _, rep2 = _spawn("import", warm)
            imports.append(f2)
            imp_only.append(rep2["import_s"])
            f3, _, rep3 = _spawn("numba", numba_env)
            nb_first.append(f3)
            nb_call.append(rep3["first_call_s"])
    med = statistics.median
    cached = med(to_first) - med(imports)
    return [
        {"metric": "cold compile: first launch of a stencil kernel (fresh cache, in-process)",
         "value": med(cold_fwd), "target": None, "note": "generate + write + numba compile (parallel)"},
        {"metric": "cold compile: first call of its adjoint", "value": med(cold_adj), "target": None, "note": ""},
        {"metric": "cold: process start -> first result", "value": med(cold_total), "target": None, "note": ""},
        {"metric": "cached: process start -> first result (total)", "value": med(to_first), "target": None,
         "note": f"process exit at {med(totals):.3f} s"},
        {"metric": "bare `import difsci` (process start -> imported)", "value": med(imports), "target": None,
         "note": f"in-process import alone {med(imp_only):.3f} s"},
        {"metric": "cached start = first result - bare import", "value": cached, "target": 0.1,
         "note": f"in-process: import numba {med(nb_import):.3f} s, then first launch {med(inproc):.3f} s"},
        {"metric": "cached start less `import numba`", "value": cached - med(nb_import), "target": None,
         "note": "difsci's work and numba's per-process runtime set-up (NRT compile, entry points)"},
        {"metric": "floor: numba cache=True prange fn, process start -> first result", "value": med(nb_first),
         "target": None, "note": f"in-process import numba + cached first call; first call alone {med(nb_call):.3f} s"},
    ]


# ------------------------------------------------------------ launch overhead
@ds.kernel
def add_one(x: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        y[i] = x[i] + 1.0


@njit(parallel=True, error_model="numpy", cache=True)
def add_one_numba(x, y):
    for i in prange(x.shape[0]):
        y[i] = x[i] + 1.0


@njit(error_model="numpy", cache=True)
def add_one_serial(x, y):
    for i in range(x.shape[0]):
        y[i] = x[i] + 1.0


def launch_case(quick: bool) -> Case:
    x0 = np.array([2.0])
    ys = {k: np.zeros(1) for k in ("numba", "serial", "gen")}
    x = ds.array(x0)
    y = ds.zeros(1)
    yt = ds.zeros(1)
    tape = ds.Tape()
    xg = ds.array(x0, requires_grad=True)
    yg = ds.zeros(1, requires_grad=True)
    add_one(xg, yg)

    def numba_direct():
        add_one_numba(x0, ys["numba"])
        return ys["numba"]

    def serial_direct():
        add_one_serial(x0, ys["serial"])
        return ys["serial"]

    def ds_launch():
        add_one(x, y)
        return y

    def ds_tape():
        with tape:
            add_one(x, yt)
        if len(tape.launches) > 10000:
            tape.reset()
        return yt

    def ds_adjoint():
        add_one.adjoint(xg, yg)      # y.grad is zero: adds nothing, but runs the adjoint kernel
        return yg

    impls = {"numba prange fn": numba_direct, "difsci": ds_launch, "difsci under Tape": ds_tape,
             "difsci kernel.adjoint(...)": ds_adjoint, "numba serial fn": serial_direct}
    try:   # internal API, for diagnosis only: the numba function difsci generated, called directly
        add_one(x, y)
        built = add_one._last._compiled      # the build this launch used (1 element: the serial one)
        gen = add_one._last.compiled("cpu:small" if "cpu:small" in built else "cpu")[0]

        def gen_direct():
            gen(x0, ys["gen"])
            return ys["gen"]
        impls["difsci's generated fn, direct"] = gen_direct
    except Exception:  # noqa: BLE001, S110
        pass

    def verify(res):
        for k, got in res.items():
            assert_close(f"{k}: y", got, [3.0])

    return Case("launch overhead, 1-element kernel", "per launch", impls, ref="numba prange fn",
                target=None, verify=verify, number=200 if quick else 2000,
                notes={"difsci under Tape": "incl. `with tape:` enter/exit (~0.3 us)",
                       "difsci kernel.adjoint(...)": "what Tape.backward pays per recorded launch"})
