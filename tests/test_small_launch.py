"""Small launches run the serial build of a kernel (difsci/lang/backends/small.py).

A launch whose parallel loops would all run serially (fewer than SMALL
iterations each, SMALL_HEAVY with inner loops) runs the kernel's source printed
with plain loops and compiled without ``parallel=True``.  It must give the same
numbers, bit for bit, as the parallel build on the same arguments; a launch
whose loop sizes cannot be told beforehand always takes the parallel build.
"""
from __future__ import annotations

import numpy as np
import pytest

import difsci as ds
from difsci.lang import compiler
from difsci.lang.backends.parfor import SMALL, SMALL_HEAVY

from gradcheck import load_kernels, tape_check, using

SRC = '''
import difsci as ds


@ds.kernel
def smooth(u: ds.f64[:, :], v: ds.f64[:, :], a: float):
    n, m = u.shape[0], u.shape[1]
    for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
        v[i, j] = u[i, j] + a * (u[i + 1, j] + u[i - 1, j] + u[i, j + 1] + u[i, j - 1] - 4.0 * u[i, j])


@ds.kernel
def first_n(x: ds.f64[:], y: ds.f64[:], n: int):
    for i in range(n):
        y[i] = ds.sin(x[i]) * x[i]


@ds.kernel
def by_count(x: ds.f64[:], counts: ds.i32[:], y: ds.f64[:]):
    for i in range(counts[0]):
        y[i] = 2.0 * x[i]


@ds.kernel
def rows(x: ds.f64[:, :], y: ds.f64[:]):
    for i in range(x.shape[0]):
        s = 0.0
        for j in range(x.shape[1]):
            s += x[i, j] * x[i, j]
        y[i] = s


@ds.kernel
def scatter_sum(x: ds.f64[:], cell: ds.i32[:], grid: ds.f64[:], loss: ds.f64[()]):
    for i in range(x.shape[0]):
        grid[cell[i]] += x[i] * x[i]
        loss[None] += ds.tanh(x[i])
'''

RNG = np.random.default_rng(3)


@pytest.fixture(scope="module")
def m(tmp_path_factory):
    return load_kernels(tmp_path_factory.mktemp("small"), SRC, "_small_launch")


def _builds(kernel):
    return set(kernel._last._compiled)


def _same_as_parallel(kernel, args, outputs):
    """Both builds on their own copies of ``args``: the outputs (indices into args) agree bitwise."""
    spec = kernel._last
    rt = [conv(v) for conv, v in zip(spec.convs, args) if conv is not None]
    runs = []
    for variant in ("cpu:small", "cpu"):
        mine = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in rt]
        spec.compiled(variant)[0](*mine)
        runs.append(mine)
    for k in outputs:
        assert np.any(runs[0][k] != 0)
        np.testing.assert_array_equal(runs[0][k], runs[1][k])


def test_small_launch_takes_the_serial_build_and_matches_the_parallel_one(m):
    with using("cpu"):
        u = RNG.standard_normal((20, 30))
        v = np.zeros_like(u)
        m.smooth(u, v, 0.1)
        assert _builds(m.smooth) == {"cpu:small"}      # 18 * 28 < 1024 iterations
        _same_as_parallel(m.smooth, [u, np.zeros_like(u), 0.1], [1])
        big = RNG.standard_normal((40, 40))             # 38 * 38 >= 1024: the parallel build
        vb = np.zeros_like(big)
        m.smooth(big, vb, 0.1)
        assert "cpu" in _builds(m.smooth)
        want = big[1:-1, 1:-1] + 0.1 * (big[2:, 1:-1] + big[:-2, 1:-1] + big[1:-1, 2:] + big[1:-1, :-2]
                                          - 4.0 * big[1:-1, 1:-1])
        np.testing.assert_allclose(vb[1:-1, 1:-1], want, rtol=1e-14)


def test_predicate_follows_shapes_and_integer_arguments(m):
    with using("cpu"):
        x = RNG.standard_normal(2000)
        y = np.zeros_like(x)
        m.first_n(x, y, 10)
        pred = compiler.small_predicate(m.first_n._last.fn)
        assert pred is not None and "n" in pred.source
        assert pred(x, y, SMALL - 1) and not pred(x, y, SMALL)
        m.first_n(x, y, 1500)
        np.testing.assert_allclose(y[:1500], np.sin(x[:1500]) * x[:1500], rtol=1e-15)
        assert _builds(m.first_n) == {"cpu:small", "cpu"}


def test_bounds_read_from_an_array_always_take_the_parallel_build(m):
    with using("cpu"):
        x = RNG.standard_normal(8)
        y = np.zeros_like(x)
        m.by_count(x, np.array([5], dtype=np.int32), y)
        assert compiler.small_predicate(m.by_count._last.fn) is None
        assert _builds(m.by_count) == {"cpu"}
        np.testing.assert_array_equal(y[:5], 2.0 * x[:5])


def test_inner_loops_use_the_heavy_threshold(m):
    with using("cpu"):
        pred = None
        for n in (SMALL_HEAVY - 1, SMALL_HEAVY):
            x = RNG.standard_normal((n, 3))
            y = np.zeros(n)
            m.rows(x, y)
            np.testing.assert_allclose(y, (x * x).sum(1), rtol=1e-14)
            pred = compiler.small_predicate(m.rows._last.fn)
        assert pred(np.zeros((SMALL_HEAVY - 1, 3)), np.zeros(1)) and not pred(np.zeros((SMALL_HEAVY, 3)), np.zeros(1))


def test_atomics_and_sums_match_the_parallel_build_bitwise(m):
    with using("cpu"):
        x = RNG.standard_normal(500)
        cell = RNG.integers(0, 7, 500).astype(np.int32)
        grid, loss = np.zeros(7), np.zeros(())
        m.scatter_sum(x, cell, grid, loss)
        assert _builds(m.scatter_sum) == {"cpu:small"}
        _same_as_parallel(m.scatter_sum, [x, cell, np.zeros(7), np.zeros(())], [2, 3])


@pytest.mark.parametrize("n", [12, 40])
def test_gradients_through_both_builds(m, n):
    """Tape backward on a small grid (serial builds of the adjoints) and a big one (the stencil's parallel
    build), against finite differences."""
    def build(u):
        v = ds.zeros(u.shape, requires_grad=True)
        m.smooth(u, v, 0.2)
        y = ds.zeros(n, requires_grad=True)
        m.rows(v, y)
        out = ds.zeros(n, requires_grad=True)
        m.first_n(y, out, n)
        tot = ds.zeros((), requires_grad=True)
        m.scatter_sum(out, np.zeros(n, np.int32), ds.zeros(1, requires_grad=True), tot)
        return tot
    with using("cpu"):
        tape_check(lambda **a: build(**a), {"u": 0.3 * RNG.standard_normal((n, n))}, ndirs=1)
        built = set().union(*(set(a[1]) for a in m.smooth._last._adjoints.values()))
        assert ("cpu:small" if n == 12 else "cpu") in built
