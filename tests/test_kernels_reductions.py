"""difsci.kernels.reductions against NumPy, and their gradients against finite differences."""
from __future__ import annotations

import numpy as np
import pytest
from test_kernels_common import grad_check, probe_loss, rng

import difsci as ds
import difsci.kernels as dk


def _np(a):
    return np.asarray(a.numpy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_whole_array_sums(py, dtype):
    x = rng(0).standard_normal((3, 4, 5)).astype(dtype)
    y = rng(1).standard_normal((3, 4, 5)).astype(dtype)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
    np.testing.assert_allclose(_np(dk.sum(x)), x.sum(dtype=np.float64), **tol)
    np.testing.assert_allclose(_np(dk.sum(x, deterministic=True)), x.sum(dtype=np.float64), **tol)
    np.testing.assert_allclose(_np(dk.mean(x)), x.mean(dtype=np.float64), **tol)
    np.testing.assert_allclose(_np(dk.dot(x, y)), np.sum(x.astype(np.float64) * y), **tol)
    np.testing.assert_allclose(_np(dk.sqnorm(x)), np.sum(x.astype(np.float64) ** 2), **tol)
    assert dk.sum(x).dtype == dtype


def test_accumulating_kernels_add_into_out(py):
    x = rng(2).standard_normal(7)
    out = ds.full((), 2.0)
    dk.reduce_sum(x, out)
    dk.reduce_sqnorm(x, out)
    assert abs(float(_np(out)) - (2.0 + x.sum() + (x ** 2).sum())) < 1e-12


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_axis_reductions(py, axis):
    x = rng(3).standard_normal((3, 4, 5))
    np.testing.assert_allclose(_np(dk.sum(x, axis=axis)), x.sum(axis=axis), rtol=1e-12)
    np.testing.assert_allclose(_np(dk.mean(x, axis=axis)), x.mean(axis=axis), rtol=1e-12)
    np.testing.assert_array_equal(_np(dk.max(x, axis=axis)), x.max(axis=axis))
    np.testing.assert_array_equal(_np(dk.min(x, axis=axis)), x.min(axis=axis))
    np.testing.assert_array_equal(_np(dk.argmax(x, axis=axis)), x.argmax(axis=axis))
    np.testing.assert_array_equal(_np(dk.argmin(x, axis=axis)), x.argmin(axis=axis))


@pytest.mark.parametrize("n", [1, 2, 7, 5000])
def test_extrema_whole_array_first_index_at_ties(py, n):
    x = np.round(rng(4).standard_normal(n) * 2)       # many ties
    assert float(_np(dk.max(x))) == x.max() and float(_np(dk.min(x))) == x.min()
    assert int(_np(dk.argmax(x))) == x.argmax() and int(_np(dk.argmin(x))) == x.argmin()


def test_extremum_of_empty_array_raises(py):
    with pytest.raises(ValueError):
        dk.max(np.zeros(0))


def test_gradients_of_sums(py):
    def build(x, y):
        return probe_loss(dk.sum(x), dk.mean(x), dk.dot(x, y), dk.sqnorm(y), dk.sum(y, deterministic=True),
                          dk.sum(x, axis=1), dk.mean(y, axis=0))
    grad_check(build, {"x": rng(5).standard_normal((3, 4)), "y": rng(6).standard_normal((3, 4))})


def test_gradients_of_extrema_go_to_the_picked_element(py):
    x0 = rng(7).standard_normal((4, 5))

    def build(x):
        return probe_loss(dk.max(x), dk.min(x), dk.max(x, axis=0), dk.min(x, axis=1))
    g = grad_check(build, {"x": x0})["x"]
    # whole-array max and min, plus per-column max and per-row min: every other element has zero gradient
    picked = np.zeros_like(x0, dtype=bool)
    picked[np.unravel_index(x0.argmax(), x0.shape)] = True
    picked[np.unravel_index(x0.argmin(), x0.shape)] = True
    picked[x0.argmax(axis=0), np.arange(5)] = True
    picked[np.arange(4), x0.argmin(axis=1)] = True
    assert np.all(g[~picked] == 0) and np.all(g[picked] != 0)


def test_deterministic_sum_is_bitwise_reproducible_and_matches_the_oracle(cpu):
    x = rng(8).standard_normal(40_003) * 1e3
    a = [float(_np(dk.sum(x, deterministic=True))) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    with_py = ds.zeros(())
    partial = ds.zeros(max(1, min(256, x.shape[0] // 4096)))
    try:
        ds.init(backend="python")
        dk.reduce_sum_deterministic(x, partial, with_py)
    finally:
        ds.init(backend="cpu")
    assert float(_np(with_py)) == a[0]
    assert abs(a[0] - x.sum()) < 1e-8 * np.abs(x).sum()


def test_reductions_on_cpu(cpu):
    x = rng(9).standard_normal((64, 300))
    assert abs(float(_np(dk.sum(x))) - x.sum()) < 1e-9
    np.testing.assert_allclose(_np(dk.mean(x, axis=0)), x.mean(axis=0), rtol=1e-12, atol=1e-14)
    assert int(_np(dk.argmax(x))) == x.argmax() and float(_np(dk.max(x))) == x.max()

    def build(x):
        return probe_loss(dk.sum(x), dk.max(x))
    grad_check(build, {"x": rng(10).standard_normal(50)})
