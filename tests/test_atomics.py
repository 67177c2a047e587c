"""CPU atomics: contention inside prange vs. serial numpy references, and Python twins."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit, prange
from numba.core.errors import TypingError

from difsci.lang.backends.atomics import (
    atomic_add,
    atomic_max,
    atomic_min,
    py_atomic_add,
    py_atomic_max,
    py_atomic_min,
)

DTYPES = [np.float32, np.float64, np.int32, np.int64]
N = 200_000
NBINS = 16


@njit(parallel=True)
def _scatter_1d(add, lo, hi, idx, val):
    for i in prange(idx.size):
        atomic_add(add, idx[i], val[i])
        atomic_min(lo, idx[i], val[i])
        atomic_max(hi, idx[i], val[i])


@njit(parallel=True)
def _scatter_2d(add, lo, hi, rows, cols, val):
    for i in prange(rows.size):
        atomic_add(add, (rows[i], cols[i]), val[i])
        atomic_min(lo, (rows[i], cols[i]), val[i])
        atomic_max(hi, (rows[i], cols[i]), val[i])


@njit(parallel=True)
def _ticket(counter, tickets):
    for i in prange(tickets.size):
        tickets[i] = atomic_add(counter, 0, 1)


@njit
def _serial(op, arr, idx, val, old):
    for i in range(idx.size):
        if op == 0:
            old[i] = atomic_add(arr, idx[i], val[i])
        elif op == 1:
            old[i] = atomic_min(arr, idx[i], val[i])
        else:
            old[i] = atomic_max(arr, idx[i], val[i])


def _values(rng, dtype, n):
    # Multiples of 1/4 in [-16, 16]: every partial sum is exact in f32/f64,
    # so a single lost update shows up as an exact mismatch.
    return (rng.integers(-64, 65, n) / 4).astype(dtype)


def _init(dtype, n_or_shape, kind):
    if kind == "add":
        return np.zeros(n_or_shape, dtype)
    info = np.finfo(dtype) if np.issubdtype(dtype, np.floating) else np.iinfo(dtype)
    return np.full(n_or_shape, info.max if kind == "min" else info.min, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_contention_1d(dtype):
    rng = np.random.default_rng(1)
    idx = rng.integers(0, NBINS, N)
    val = _values(rng, dtype, N)
    add, lo, hi = (_init(dtype, NBINS, k) for k in ("add", "min", "max"))
    _scatter_1d(add, lo, hi, idx, val)
    ref_add, ref_lo, ref_hi = (_init(dtype, NBINS, k) for k in ("add", "min", "max"))
    np.add.at(ref_add, idx, val)
    np.minimum.at(ref_lo, idx, val)
    np.maximum.at(ref_hi, idx, val)
    np.testing.assert_array_equal(add, ref_add)
    np.testing.assert_array_equal(lo, ref_lo)
    np.testing.assert_array_equal(hi, ref_hi)


@pytest.mark.parametrize("dtype", DTYPES)
def test_contention_2d_tuple_index(dtype):
    rng = np.random.default_rng(2)
    rows = rng.integers(0, 4, N).astype(np.int32)  # mixed index int widths
    cols = rng.integers(0, 4, N)
    val = _values(rng, dtype, N)
    add, lo, hi = (_init(dtype, (4, 4), k) for k in ("add", "min", "max"))
    _scatter_2d(add, lo, hi, rows, cols, val)
    ref_add, ref_lo, ref_hi = (_init(dtype, (4, 4), k) for k in ("add", "min", "max"))
    np.add.at(ref_add, (rows, cols), val)
    np.minimum.at(ref_lo, (rows, cols), val)
    np.maximum.at(ref_hi, (rows, cols), val)
    np.testing.assert_array_equal(add, ref_add)
    np.testing.assert_array_equal(lo, ref_lo)
    np.testing.assert_array_equal(hi, ref_hi)


def test_float64_random_sum_to_rounding():
    rng = np.random.default_rng(3)
    idx = rng.integers(0, NBINS, N)
    val = rng.standard_normal(N)
    add, lo, hi = (_init(np.float64, NBINS, k) for k in ("add", "min", "max"))
    _scatter_1d(add, lo, hi, idx, val)
    ref = np.zeros(NBINS)
    np.add.at(ref, idx, val)
    # Reordering error is ~1e-12 here; one lost update would be ~1.
    np.testing.assert_allclose(add, ref, rtol=0, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_returns_old_value_unique_tickets(dtype):
    counter = np.zeros(1, dtype)
    tickets = np.empty(N, dtype)
    _ticket(counter, tickets)
    assert counter[0] == N
    np.testing.assert_array_equal(np.sort(tickets), np.arange(N, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", [0, 1, 2])
def test_python_twins_match_compiled(dtype, op):
    """Same sequence of old values and final state, including casts and wraparound."""
    rng = np.random.default_rng(4)
    n = 500
    idx = rng.integers(-4, 4, n)  # negative indices wrap like numpy
    val = rng.uniform(-9.9, 9.9, n)  # float64 values, cast to dtype first
    twin = (py_atomic_add, py_atomic_min, py_atomic_max)[op]
    a_c = rng.integers(-5, 5, 4).astype(dtype)
    a_p = a_c.copy()
    old_c = np.empty(n, dtype)
    _serial(op, a_c, idx, val, old_c)
    old_p = np.array([twin(a_p, int(i), v) for i, v in zip(idx, val)], dtype)
    np.testing.assert_array_equal(old_c, old_p)
    np.testing.assert_array_equal(a_c, a_p)


def test_python_twins_reference_and_tuple_index():
    rng = np.random.default_rng(5)
    rows, cols = rng.integers(0, 3, 2000), rng.integers(0, 2, 2000)
    val = rng.standard_normal(2000)
    add, lo, hi = (_init(np.float64, (3, 2), k) for k in ("add", "min", "max"))
    for r, c, v in zip(rows, cols, val):
        py_atomic_add(add, (r, c), v)
        py_atomic_min(lo, (r, c), v)
        py_atomic_max(hi, (r, c), v)
    ref = np.zeros((3, 2))
    np.add.at(ref, (rows, cols), val)
    np.testing.assert_allclose(add, ref, rtol=1e-12, atol=1e-12)
    ref_lo, ref_hi = _init(np.float64, (3, 2), "min"), _init(np.float64, (3, 2), "max")
    np.minimum.at(ref_lo, (rows, cols), val)
    np.maximum.at(ref_hi, (rows, cols), val)
    np.testing.assert_array_equal(lo, ref_lo)
    np.testing.assert_array_equal(hi, ref_hi)


def test_int_add_wraps_like_compiled():
    a = np.array([np.iinfo(np.int32).max], np.int32)
    assert py_atomic_add(a, 0, 1) == np.iinfo(np.int32).max
    assert a[0] == np.iinfo(np.int32).min


def test_nan_semantics_match_fmin_fmax():
    seq = np.array([np.nan, 1.0, np.nan, -2.0, 3.0, np.nan])
    idx = np.zeros(seq.size, np.int64)
    for op, twin, ufunc in ((1, py_atomic_min, np.fmin), (2, py_atomic_max, np.fmax)):
        for start in (np.nan, 0.5):
            a_c = np.array([start])
            a_p = a_c.copy()
            old = np.empty(seq.size)
            _serial(op, a_c, idx, seq, old)
            for v in seq:
                twin(a_p, 0, v)
            ref = np.array([start])
            ufunc.at(ref, idx, seq)
            np.testing.assert_array_equal(a_c, ref)
            np.testing.assert_array_equal(a_p, ref)


def test_typing_errors():
    @njit
    def bad_rank(a):
        atomic_add(a, 0, 1.0)

    @njit
    def bad_len(a):
        atomic_min(a, (0, 0, 0), 1.0)

    with pytest.raises(TypingError, match="tuple"):
        bad_rank(np.zeros((2, 2)))
    with pytest.raises(TypingError, match="2 integers"):
        bad_len(np.zeros((2, 2)))
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(TypingError, match="read-only"):
        bad_rank(ro)
