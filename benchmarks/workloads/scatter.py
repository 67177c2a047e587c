"""Workload 3: particle scatter-add with heavy collisions (forward).

1M particles deposit their mass onto a 64 x 64 grid (~244 particles per
cell): ``grid[i, j] += mass[p]`` in a parallel loop over particles.

difsci: the loop as a user writes it (difsci lowers the ``+=`` to an atomic
add).  Reference: what a person writes on a CPU — one private grid per
thread, merged afterwards (no atomics).  Two more numba versions are shown
for context: the same loop with difsci's own atomic intrinsic, and the plain
serial loop.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

import difsci as ds
from difsci.lang.backends.atomics import atomic_add

from ..harness import Case, assert_close

SIZES = {"tiny": (2000, 8), "quick": (200_000, 64), "full": (1_000_000, 64)}


@ds.kernel
def deposit(pos: ds.f32[:, :], mass: ds.f32[:], grid: ds.f32[:, :]):
    g = grid.shape[0]
    for p in range(pos.shape[0]):
        i = int(pos[p, 0] * g)
        j = int(pos[p, 1] * g)
        grid[i, j] += mass[p]


@njit(parallel=True, error_model="numpy", cache=True)
def ref_privatized(pos, mass, grid, nt):
    """One private grid per thread (``nt`` = numba.get_num_threads()), then a parallel merge."""
    g = grid.shape[0]
    n = pos.shape[0]
    priv = np.zeros((nt, g, g), np.float32)
    chunk = (n + nt - 1) // nt
    for t in prange(nt):
        for p in range(t * chunk, min(n, (t + 1) * chunk)):
            i = int(pos[p, 0] * np.float32(g))
            j = int(pos[p, 1] * np.float32(g))
            priv[t, i, j] += mass[p]
    for i in prange(g):
        for j in range(g):
            s = np.float32(0.0)
            for t in range(nt):
                s += priv[t, i, j]
            grid[i, j] = s


@njit(parallel=True, error_model="numpy", cache=True)
def ref_atomic(pos, mass, grid):
    g = grid.shape[0]
    for p in prange(pos.shape[0]):
        i = int(pos[p, 0] * np.float32(g))
        j = int(pos[p, 1] * np.float32(g))
        atomic_add(grid, (i, j), mass[p])


@njit(error_model="numpy", cache=True)
def ref_serial(pos, mass, grid):
    g = grid.shape[0]
    for p in range(pos.shape[0]):
        i = int(pos[p, 0] * np.float32(g))
        j = int(pos[p, 1] * np.float32(g))
        grid[i, j] += mass[p]


def cases(size: str, peers: dict | None = None) -> list[Case]:
    n, g = SIZES[size]
    rng = np.random.default_rng(3)
    # All implementations read the same input buffers (the ds.Arrays' own data), so that no
    # implementation's inputs are warmer in the cache than another's.
    pos = ds.array(rng.random((n, 2), dtype=np.float32) * np.float32(0.999))
    mass = ds.array(rng.uniform(0.5, 1.5, n).astype(np.float32))
    pos0, mass0 = pos.numpy(), mass.numpy()

    grids = {k: np.zeros((g, g), np.float32) for k in ("priv", "atomic", "serial")}

    def numba_impl(fn, key):
        def run():
            out = grids[key]
            out[...] = 0.0
            if fn is ref_privatized:
                fn(pos0, mass0, out, numba.get_num_threads())
            else:
                fn(pos0, mass0, out)
            return out
        return run

    grid = ds.zeros((g, g), dtype=np.float32)

    def ds_run():
        grid.fill(0.0)
        deposit(pos, mass, grid)
        return grid

    truth = np.zeros((g, g))
    np.add.at(truth, ((pos0[:, 0] * np.float32(g)).astype(int), (pos0[:, 1] * np.float32(g)).astype(int)),
              mass0.astype(np.float64))

    def verify(res):
        for k, got in res.items():
            assert_close(f"{k}: grid", got, truth, rtol=1e-4)
        assert abs(float(res["difsci"].sum()) - float(mass0.sum(dtype=np.float64))) < 1e-4 * n

    label = f"3 scatter {n:,} -> {g}^2 f32"
    impls = {"numba": numba_impl(ref_privatized, "priv"), "difsci": ds_run,
             "numba atomic": numba_impl(ref_atomic, "atomic"), "numba serial": numba_impl(ref_serial, "serial")}
    return [Case(label, "forward", impls, ref="numba", target=1.2, verify=verify,
                 notes={"numba": "privatised per-thread grids", "numba atomic": "difsci's atomic_add intrinsic",
                        "numba serial": "1 thread, plain +="})]
