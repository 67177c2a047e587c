"""Loops that sum into fixed elements (``loss[None] += ...``): privatised into scalar sums and run in
chunks whose sums LLVM may vectorise (backends/parfor.py ``_chunked``, backends/reassoc.py ``radd``).

Checked against NumPy in float64 on both backends, on the parallel path (>= 1024 iterations) and
next to it: integer counts exactly, float32 inputs summed in float64, a loop starting at 1, a 2-D
loop, several sums in one loop, and the same result on every run.
"""
from __future__ import annotations

import numpy as np
import pytest

import difsci as ds


@ds.kernel
def stats(x: ds.f32[:], s: ds.f32[()], s2: ds.f64[()], count: ds.i64[()]):
    for i in range(1, x.shape[0]):
        s[None] += x[i]
        s2[None] += ds.f64(x[i]) * x[i - 1]
        if x[i] > 0.0:
            count[None] += 1


@ds.kernel
def grid_sum(a: ds.f64[:, :], out: ds.f64[:]):
    for i, j in ds.ndrange(a.shape[0], a.shape[1]):
        out[0] += a[i, j] * (i + 1)
        out[1] += ds.sin(a[i, j]) * j


@pytest.mark.parametrize("n", [5, 1023, 1024, 100_003])
def test_sums_on_both_backends(backend, n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    s, s2, c = np.zeros((), np.float32), np.zeros(()), np.zeros((), np.int64)
    stats(x, s, s2, c)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(float(s), x64[1:].sum(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(float(s2), np.dot(x64[1:], x64[:-1]), rtol=1e-12)
    assert int(c) == int(np.sum(x[1:] > 0))
    if n >= 1024 and backend == "cpu":
        assert "radd(" in stats.source


def test_two_dimensional_sums_and_repeatability(backend):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((1500, 7))
    outs = []
    for _ in range(2):
        out = np.zeros(2)
        grid_sum(a, out)
        outs.append(out)
    i = np.arange(1, 1501)[:, None]
    j = np.arange(7)[None, :]
    np.testing.assert_allclose(outs[0], [np.sum(a * i), np.sum(np.sin(a) * j)], rtol=1e-12)
    assert np.array_equal(outs[0], outs[1])
