"""Benchmark two difsci.kernels kernels against hand-written numba and NumPy.

* the dense layer ``y = tanh(x @ W + b)``, batch 2000, 20 -> 20, float32:
  forward, and the backward pass (gradients of x, W, b for a seed on y);
* the 2-D five-point Laplacian on a 1024 x 1024 float64 grid (Dirichlet
  boundary, ghost value 0): forward and backward.

Each implementation runs until about ``--seconds`` of samples are in (after a
warm-up call that compiles); the table shows medians and the ratio to the
hand-written numba version.  Compile times are not included.

    python benchmarks/bench_kernels.py [--seconds 1.0] [--quick] [--cpu-time]

``--cpu-time``: one numba thread and CPU time instead of wall time, which
other processes on a shared machine disturb far less (two-thread parallel
regions wait for a descheduled thread when another job holds a core).  BLAS
(NumPy's, and SciPy's that ``ds.matmul`` calls) runs one thread in both modes.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

if "--cpu-time" in sys.argv:           # must be set before numba is imported
    os.environ["NUMBA_NUM_THREADS"] = "1"

import numba
import numpy as np
from numba import njit, prange

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import difsci as ds
import difsci.kernels as dk


# ------------------------------------------------------------- hand-written numba
@njit(parallel=True, error_model="numpy", cache=True)
def dense_numba(x, W, b, y):
    """The loop a user would write: np.tanh from libm."""
    for n in prange(x.shape[0]):
        for j in range(W.shape[1]):
            s = b[j]
            for k in range(x.shape[1]):
                s += x[n, k] * W[k, j]
            y[n, j] = np.tanh(s)


@njit(parallel=True, error_model="numpy", cache=True)
def dense_numba_exp(x, W, b, y):
    """The same loop with difsci's tanh formula (one exp), to separate the formula from the code."""
    for n in prange(x.shape[0]):
        for j in range(W.shape[1]):
            s = b[j]
            for k in range(x.shape[1]):
                s += x[n, k] * W[k, j]
            e = math.exp(np.float32(2.0) * min(max(s, np.float32(-20.0)), np.float32(20.0)))
            y[n, j] = np.float32(1.0) - np.float32(2.0) / (e + np.float32(1.0))


@njit(parallel=True, error_model="numpy", cache=True)
def dense_numba_backward(x, W, y, gy, gx, gW, gb):
    """Gradients for y = tanh(x W + b): dz = gy (1 - y^2); gx = dz W^T; gW = x^T dz; gb = sum dz."""
    N, K = x.shape
    J = W.shape[1]
    dz = np.empty_like(y)
    for n in prange(N):
        for j in range(J):
            dz[n, j] = gy[n, j] * (np.float32(1.0) - y[n, j] * y[n, j])
        for k in range(K):
            s = np.float32(0.0)
            for j in range(J):
                s += dz[n, j] * W[k, j]
            gx[n, k] += s
    for k in prange(K):
        for n in range(N):
            xk = x[n, k]
            for j in range(J):
                gW[k, j] += xk * dz[n, j]
    for j in prange(J):
        s = np.float32(0.0)
        for n in range(N):
            s += dz[n, j]
        gb[j] += s


@njit(parallel=True, error_model="numpy", cache=True)
def laplacian_numba_branchy(u, out, c):
    """One loop with the boundary tests inline (the first thing one writes)."""
    nx, ny = u.shape
    for i in prange(nx):
        for j in range(ny):
            um = u[i - 1, j] if i > 0 else 0.0
            up = u[i + 1, j] if i < nx - 1 else 0.0
            vm = u[i, j - 1] if j > 0 else 0.0
            vp = u[i, j + 1] if j < ny - 1 else 0.0
            out[i, j] = (um + up + vm + vp - 4.0 * u[i, j]) * c


@njit(parallel=True, error_model="numpy", cache=True)
def laplacian_numba(u, out, c):
    """Interior loop without tests, then the edges (the careful version)."""
    nx, ny = u.shape
    for i in prange(1, nx - 1):
        for j in range(1, ny - 1):
            out[i, j] = (u[i - 1, j] + u[i + 1, j] + u[i, j - 1] + u[i, j + 1] - 4.0 * u[i, j]) * c
    for e in prange(2 * nx + 2 * ny):          # the edges: rows 0 and nx-1, columns 0 and ny-1
        if e < 2 * ny:
            i, j = (e // ny) * (nx - 1), e % ny
        else:
            i, j = (e - 2 * ny) % nx, ((e - 2 * ny) // nx) * (ny - 1)
        um = u[i - 1, j] if i > 0 else 0.0
        up = u[i + 1, j] if i < nx - 1 else 0.0
        vm = u[i, j - 1] if j > 0 else 0.0
        vp = u[i, j + 1] if j < ny - 1 else 0.0
        out[i, j] = (um + up + vm + vp - 4.0 * u[i, j]) * c


@njit(parallel=True, error_model="numpy", cache=True)
def laplacian_numba_backward(gout, gu, c):
    """gu += L^T gout (= L gout: the Dirichlet-0 Laplacian is symmetric)."""
    nx, ny = gout.shape
    for i in prange(nx):
        for j in range(ny):
            um = gout[i - 1, j] if i > 0 else 0.0
            up = gout[i + 1, j] if i < nx - 1 else 0.0
            vm = gout[i, j - 1] if j > 0 else 0.0
            vp = gout[i, j + 1] if j < ny - 1 else 0.0
            gu[i, j] += (um + up + vm + vp - 4.0 * gout[i, j]) * c


# ------------------------------------------------------------------- NumPy
def dense_numpy(x, W, b):
    return np.tanh(x @ W + b)


def dense_numpy_backward(x, W, y, gy):
    dz = gy * (1 - y * y)
    return dz @ W.T, x.T @ dz, dz.sum(0)


def laplacian_numpy(u, c):
    p = np.pad(u, 1)
    return (p[2:, 1:-1] + p[:-2, 1:-1] + p[1:-1, 2:] + p[1:-1, :-2] - 4.0 * u) * c


# ------------------------------------------------------------------ timing
CLOCK = time.process_time if "--cpu-time" in sys.argv else time.perf_counter


def median_times(impls, seconds: float) -> list:
    """Median wall time of each ``(fn, reset)`` in ``impls``, sampled round-robin for about ``seconds`` each.

    Round-robin sampling spreads load from other processes evenly over the
    implementations, so their ratios stay meaningful on a busy machine.
    ``reset()`` (or None) runs untimed before each call.
    """
    for fn, reset in impls:                       # warm-up: compiles
        if reset:
            reset()
        fn()
    samples = [[] for _ in impls]
    t_end = time.perf_counter() + seconds * len(impls)
    while len(samples[0]) < 5 or (time.perf_counter() < t_end and len(samples[0]) < 2000):
        for (fn, reset), acc in zip(impls, samples):
            if reset:
                reset()
            t0 = CLOCK()
            fn()
            acc.append(CLOCK() - t0)
    return [statistics.median(acc) for acc in samples]


def dense_cases(seconds, batch=2000, width=20):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, width)).astype(np.float32)
    W = (rng.standard_normal((width, width)) / math.sqrt(width)).astype(np.float32)
    b = rng.standard_normal(width).astype(np.float32)
    y = np.zeros((batch, width), np.float32)
    z = np.zeros((batch, width), np.float32)
    ref = np.tanh(x.astype(np.float64) @ W + b)
    k = dk.dense_kernel("tanh")
    rows = []
    fwd = [("difsci  dk.dense_kernel('tanh')", lambda: k(x, W, b, z, y)),
           ("numba   hand-written, np.tanh", lambda: dense_numba(x, W, b, y)),
           ("numba   hand-written, exp formula", lambda: dense_numba_exp(x, W, b, y)),
           ("NumPy   np.tanh(x @ W + b) (BLAS)", lambda: dense_numpy(x, W, b))]
    for (name, fn), t in zip(fwd, median_times([(fn, None) for _, fn in fwd], seconds)):
        fn()
        out = dense_numpy(x, W, b) if name.startswith("NumPy") else y
        rows.append(("dense fwd", name, t, float(np.abs(out - ref).max())))
    # backward: difsci's generated adjoint (through ds.Tape's kernel.adjoint) vs hand-written
    xa, Wa, ba = (ds.array(a, requires_grad=True) for a in (x, W, b))
    ya = ds.zeros((batch, width), dtype=np.float32, requires_grad=True)
    za = ds.zeros((batch, width), dtype=np.float32, requires_grad=True)
    k(xa, Wa, ba, za, ya)
    gy = rng.standard_normal((batch, width)).astype(np.float32)

    def reset_ds():
        ya.grad.numpy()[...] = gy
        for a in (xa, Wa, ba, za):
            a.zero_grad()
    gx, gW, gb = np.zeros_like(x), np.zeros_like(W), np.zeros_like(b)
    yn = np.tanh(x @ W + b)

    def reset_nb():
        gx[...] = 0
        gW[...] = 0
        gb[...] = 0
    bwd = [("difsci  generated adjoint", lambda: k.adjoint(xa, Wa, ba, za, ya), reset_ds),
           ("numba   hand-written backward", lambda: dense_numba_backward(x, W, yn, gy, gx, gW, gb), reset_nb),
           ("NumPy   dz @ W.T, x.T @ dz (BLAS)", lambda: dense_numpy_backward(x, W, yn, gy), None)]
    for (name, _, _), t in zip(bwd, median_times([(fn, reset) for _, fn, reset in bwd], seconds)):
        rows.append(("dense bwd", name, t, None))
    gref = dense_numpy_backward(x.astype(np.float64), W.astype(np.float64), ref, gy.astype(np.float64))
    reset_ds()
    k.adjoint(xa, Wa, ba, za, ya)
    err = max(float(np.abs(a.grad.numpy() - g).max() / np.abs(g).max()) for a, g in zip((xa, Wa, ba), gref))
    rows[-3] = rows[-3][:3] + (err,)
    return rows


def laplacian_cases(seconds, n=1024):
    rng = np.random.default_rng(1)
    u = rng.standard_normal((n, n))
    h = 1.0 / n
    c = 1.0 / (h * h)
    out = np.zeros_like(u)
    ref = laplacian_numpy(u, c)
    rows = []
    fwd = [("difsci  dk.laplacian2d (Dirichlet)", lambda: dk.laplacian2d(u, out, h, dk.DIRICHLET, 0.0)),
           ("numba   hand-written, interior split", lambda: laplacian_numba(u, out, c)),
           ("numba   hand-written, branchy", lambda: laplacian_numba_branchy(u, out, c)),
           ("NumPy   np.pad + slices", lambda: laplacian_numpy(u, c))]
    for (name, fn), t in zip(fwd, median_times([(fn, None) for _, fn in fwd], seconds)):
        fn()
        res = laplacian_numpy(u, c) if name.startswith("NumPy") else out
        rows.append(("laplacian fwd", name, t, float(np.abs(res - ref).max() / np.abs(ref).max())))
    ua = ds.array(u, requires_grad=True)
    oa = ds.zeros((n, n), requires_grad=True)
    dk.laplacian2d(ua, oa, h, dk.DIRICHLET, 0.0)
    seed = rng.standard_normal((n, n))
    gu = np.zeros_like(u)

    def reset_ds():
        oa.grad.numpy()[...] = seed
        ua.zero_grad()
    bwd = [("difsci  generated adjoint", lambda: dk.laplacian2d.adjoint(ua, oa, h, dk.DIRICHLET, 0.0), reset_ds),
           ("numba   hand-written backward", lambda: laplacian_numba_backward(seed, gu, c), None),
           ("NumPy   np.pad + slices", lambda: laplacian_numpy(seed, c), None)]
    for (name, _, _), t in zip(bwd, median_times([(fn, reset) for _, fn, reset in bwd], seconds)):
        rows.append(("laplacian bwd", name, t, None))
    reset_ds()
    dk.laplacian2d.adjoint(ua, oa, h, dk.DIRICHLET, 0.0)
    g = laplacian_numpy(seed, c)
    rows[-3] = rows[-3][:3] + (float(np.abs(ua.grad.numpy() - g).max() / np.abs(g).max()),)
    return rows


def table(rows) -> str:
    lines = [f"{'case':<14} {'implementation':<38} {'median':>11} {'vs numba':>9}  max rel. err",
             "-" * 90]
    base = {}
    for case, name, t, _ in rows:
        if name.startswith("numba") and case not in base:
            base[case] = t
    for case, name, t, err in rows:
        ratio = t / base[case]
        e = "" if err is None else f"{err:.1e}"
        lines.append(f"{case:<14} {name:<38} {t * 1e3:8.3f} ms {ratio:8.2f}x  {e}")
    return "\n".join(lines)


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=1.0, help="sampling time per implementation")
    p.add_argument("--quick", action="store_true", help="small sizes, short sampling (a smoke test)")
    p.add_argument("--cpu-time", action="store_true", help="one numba thread, CPU time (robust to other load)")
    a = p.parse_args(argv)
    ds.init(backend="cpu")
    # BLAS one thread in both modes: NumPy's OpenBLAS threads spin after each call and, interleaved
    # with numba's OpenMP regions on 2 cores, made both 3-50x slower (dense bwd: 9 ms instead of 0.2)
    from threadpoolctl import threadpool_limits
    threadpool_limits(1, user_api="blas")
    secs = 0.05 if a.quick else a.seconds
    rows = dense_cases(secs, batch=200 if a.quick else 2000) + laplacian_cases(secs, n=128 if a.quick else 1024)
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    head = (f"difsci.kernels benchmark: numba {numba.__version__}, {numba.config.NUMBA_NUM_THREADS} threads, "
            f"{os.cpu_count()} CPUs{load}; medians of ~{secs:g} s of calls each, round-robin (compile excluded)"
            f"{'; CPU time (process_time)' if a.cpu_time else '; wall time'}\n"
            "ratio: median / median of the first hand-written numba version of the same case\n")
    out = head + table(rows)
    print(out)
    return out


if __name__ == "__main__":
    main()
