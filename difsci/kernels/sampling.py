"""Seeded random points in boxes: uniform and Latin-hypercube (collocation points, initial states).

Plain NumPy functions (``uniform_box``, ``latin_hypercube``) and kernels
built on difsci's counter-based generators (``randu_box``, ``randn_fill``,
``latin_hypercube_fill``), which give the same numbers on every backend and
need no state: point ``i``, coordinate ``d`` is a pure function of
``(seed, i, d)``.
"""
from __future__ import annotations

import numpy as np

import difsci as ds


def _box(lo, hi):
    lo = np.atleast_1d(np.asarray(lo, dtype=np.float64))
    hi = np.atleast_1d(np.asarray(hi, dtype=np.float64))
    if lo.shape != hi.shape or lo.ndim != 1:
        raise ValueError(f"lo and hi must be 1-D of the same length, got {lo.shape} and {hi.shape}")
    if np.any(hi < lo):
        raise ValueError("every hi must be >= lo")
    return lo, hi


def uniform_box(n: int, lo, hi, seed: int = 0, dtype=np.float64) -> np.ndarray:
    """(n, d) points uniform in the box [lo, hi) (lo, hi: length-d sequences)."""
    lo, hi = _box(lo, hi)
    u = np.random.default_rng(seed).random((n, lo.shape[0]))
    return (lo + (hi - lo) * u).astype(dtype)


def latin_hypercube(n: int, lo, hi, seed: int = 0, dtype=np.float64) -> np.ndarray:
    """(n, d) Latin-hypercube points in [lo, hi): along each axis, one point in each of n equal strata."""
    lo, hi = _box(lo, hi)
    rng = np.random.default_rng(seed)
    d = lo.shape[0]
    strata = np.argsort(rng.random((n, d)), axis=0)      # each column a random permutation of 0..n-1
    u = (strata + rng.random((n, d))) / max(n, 1)
    return (lo + (hi - lo) * u).astype(dtype)


@ds.kernel
def randu_box(out, lo, hi, seed: int):
    """out[i, d] = lo[d] + (hi[d] - lo[d]) * randu(seed, i, d).  out: (n, D); lo, hi: (D,)."""
    for i, d in ds.ndrange(out.shape[0], out.shape[1]):
        out[i, d] = lo[d] + (hi[d] - lo[d]) * ds.randu(seed, i, d)


@ds.kernel
def randn_fill(out, mean: float, std: float, seed: int):
    """out[i, d] = mean + std * randn(seed, i, d).  out: (n, D)."""
    for i, d in ds.ndrange(out.shape[0], out.shape[1]):
        out[i, d] = mean + std * ds.randn(seed, i, d)


@ds.kernel
def latin_hypercube_fill(out, strata, lo, hi, seed: int):
    """out[i, d] = lo[d] + (hi[d] - lo[d]) * (strata[i, d] + randu(seed, i, d)) / n.

    out: (n, D) floats; strata: (n, D) ints, each column a permutation of
    0..n-1 (see :func:`lhs_strata`); lo, hi: (D,).
    """
    n = out.shape[0]
    for i, d in ds.ndrange(n, out.shape[1]):
        out[i, d] = lo[d] + (hi[d] - lo[d]) * (strata[i, d] + ds.randu(seed, i, d)) / n


def lhs_strata(n: int, d: int, seed: int = 0) -> np.ndarray:
    """(n, d) int64: each column an independent random permutation of 0..n-1."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(d)], axis=1).astype(np.int64)
