"""Workload 2: 2-D 5-point (heat) stencil, float32, ping-pong buffers, forward only.

difsci: a one-step kernel launched once per step (the buffers swapped in
Python), and the same thing as one kernel with a ``ds.serial`` time loop
(two parallel loops per iteration: u -> v, v -> u).  Reference: one numba
function with the time loop inside and prange over rows.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

import difsci as ds

from ..harness import Case, assert_close

SIZES = {"tiny": (32, 4), "quick": (256, 20), "full": (1024, 100)}
ALPHA = 0.2


@ds.kernel
def heat_step(u: ds.f32[:, :], v: ds.f32[:, :], alpha: float):
    n, m = u.shape[0], u.shape[1]
    for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
        v[i, j] = u[i, j] + alpha * (u[i + 1, j] + u[i - 1, j] + u[i, j + 1] + u[i, j - 1] - 4.0 * u[i, j])


@ds.kernel
def heat_steps(u: ds.f32[:, :], v: ds.f32[:, :], alpha: float, pairs: int):
    n, m = u.shape[0], u.shape[1]
    for t in ds.serial(range(pairs)):
        for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
            v[i, j] = u[i, j] + alpha * (u[i + 1, j] + u[i - 1, j] + u[i, j + 1] + u[i, j - 1] - 4.0 * u[i, j])
        for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
            u[i, j] = v[i, j] + alpha * (v[i + 1, j] + v[i - 1, j] + v[i, j + 1] + v[i, j - 1] - 4.0 * v[i, j])


@njit(parallel=True, error_model="numpy", cache=True)
def _ref_step(u, v, alpha):
    n, m = u.shape
    for i in prange(1, n - 1):
        for j in range(1, m - 1):
            v[i, j] = u[i, j] + alpha * (u[i + 1, j] + u[i - 1, j] + u[i, j + 1] + u[i, j - 1]
                                         - np.float32(4.0) * u[i, j])


@njit(parallel=True, error_model="numpy", cache=True)
def ref_steps(u, v, alpha, steps):
    """``steps`` (even) steps u -> v -> u ...; the result is in u."""
    n, m = u.shape
    for _ in range(steps // 2):
        for i in prange(1, n - 1):
            for j in range(1, m - 1):
                v[i, j] = u[i, j] + alpha * (u[i + 1, j] + u[i - 1, j] + u[i, j + 1] + u[i, j - 1]
                                             - np.float32(4.0) * u[i, j])
        for i in prange(1, n - 1):
            for j in range(1, m - 1):
                u[i, j] = v[i, j] + alpha * (v[i + 1, j] + v[i - 1, j] + v[i, j + 1] + v[i, j - 1]
                                             - np.float32(4.0) * v[i, j])


def initial(n: int) -> np.ndarray:
    xs = np.linspace(0, 1, n, dtype=np.float64)
    u = np.exp(-((xs[:, None] - 0.4) ** 2 + (xs[None, :] - 0.6) ** 2) / 0.02)
    return u.astype(np.float32)


def cases(size: str, peers: dict | None = None) -> list[Case]:
    n, steps = SIZES[size]
    assert steps % 2 == 0
    u0 = initial(n)
    alpha32 = np.float32(ALPHA)

    ru, rv = u0.copy(), u0.copy()

    def ref():
        ru[...] = u0
        rv[...] = u0
        ref_steps(ru, rv, alpha32, steps)
        return ru

    du, dv = ds.array(u0), ds.array(u0)

    def ds_launches():
        du.numpy()[...] = u0
        dv.numpy()[...] = u0
        a, b = du, dv
        for _ in range(steps):
            heat_step(a, b, ALPHA)
            a, b = b, a
        return a          # after an even number of steps, du

    su, sv = ds.array(u0), ds.array(u0)

    def ds_serial():
        su.numpy()[...] = u0
        sv.numpy()[...] = u0
        heat_steps(su, sv, ALPHA, steps // 2)
        return su

    def verify(res):
        want = res["numba"]
        for k, got in res.items():
            assert_close(f"{k}: field after {steps} steps", got, want, rtol=1e-5)
        assert abs(float(want.sum()) - float(u0.sum())) > 0 or steps == 0   # the field did evolve

    label = f"2 stencil {n}^2 x {steps} f32"
    return [Case(label, "forward", {"numba": ref, "difsci": ds_launches, "difsci serial": ds_serial},
                 ref="numba", target=1.2, verify=verify, target_impls=("difsci", "difsci serial"),
                 notes={"difsci": f"{steps} launches", "difsci serial": "one ds.serial launch",
                        "numba": "time loop inside one function"})]
