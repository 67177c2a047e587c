"""Child process for the start-up measurements (run by benchmarks/startup.py).

    python startup_child.py difsci   # import difsci (then numba, timed apart), launch a kernel, then its adjoint
    python startup_child.py import   # only `import difsci`
    python startup_child.py numba    # the floor: import numba, call a cache=True prange function

Prints one JSON line: wall-clock timestamps (``time.time()``) when the
process reached each point, and in-process durations (``perf_counter``).
The parent compares the timestamps with the moment it spawned the process.
"""
from __future__ import annotations

import json
import sys
import time

_T0 = time.perf_counter()
MODE = sys.argv[1] if len(sys.argv) > 1 else "difsci"


def report(**kw):
    print(json.dumps(kw), flush=True)


if MODE == "import":
    import difsci  # noqa: F401
    report(t_done=time.time(), import_s=time.perf_counter() - _T0)

elif MODE == "numba":
    import numpy as np
    from numba import njit, prange

    t_imp = time.perf_counter()

    @njit(parallel=True, error_model="numpy", cache=True)
    def heat_step_numba(u, v, alpha):
        n, m = u.shape
        for i in prange(1, n - 1):
            for j in range(1, m - 1):
                v[i, j] = u[i, j] + alpha * (u[i + 1, j] + u[i - 1, j] + u[i, j + 1] + u[i, j - 1] - 4.0 * u[i, j])

    u = np.ones((64, 64))
    v = np.zeros((64, 64))
    heat_step_numba(u, v, 0.1)
    t_first = time.time()
    report(t_first=t_first, import_s=t_imp - _T0, first_call_s=time.perf_counter() - t_imp, result=float(v.sum()))

else:
    import numpy as np

    import difsci as ds

    t_imp = time.perf_counter()
    import numba  # noqa: F401  (what the first launch would import: timed apart)
    t_call = time.perf_counter()
    numba_import_s = t_call - t_imp

    @ds.kernel
    def heat_step(u: ds.f64[:, :], v: ds.f64[:, :], alpha: float):
        n, m = u.shape[0], u.shape[1]
        for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
            v[i, j] = u[i, j] + alpha * (u[i + 1, j] + u[i - 1, j] + u[i, j + 1] + u[i, j - 1] - 4.0 * u[i, j])

    u = ds.array(np.ones((64, 64)), requires_grad=True)
    v = ds.zeros((64, 64), requires_grad=True)
    heat_step(u, v, 0.1)
    t_first = time.time()
    first_call_s = time.perf_counter() - t_call
    result = float(v.numpy().sum())
    t1 = time.perf_counter()
    v.grad.fill(1.0)
    heat_step.adjoint(u, v, 0.1)
    adjoint_s = time.perf_counter() - t1
    report(t_first=t_first, import_s=t_imp - _T0, first_call_s=first_call_s, numba_import_s=numba_import_s,
           adjoint_first_call_s=adjoint_s,
           result=result, grad=float(u.grad.numpy().sum()))
