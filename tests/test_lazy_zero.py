"""Lazily zeroed gradients (``Array.zero_grad``) and the adjoints that zero them as they go.

``zero_grad`` of a big gradient that nothing else holds only marks it zero; whoever reads ``.grad``
next gets the zeros written first, and a ``ds.serial`` adjoint whose first touch of each time slice
is a gathered loop takes it as it is (difsci/lang/passes/fresh.py).  Everything here checks that the
result is the one an eager ``zero_grad`` gives, bit for bit, starting from a gradient full of garbage.
"""
from __future__ import annotations

import contextlib
import sys

import numpy as np
import pytest

import difsci as ds
from difsci.lang.passes import fresh

from gradcheck import load_kernels, using

ARRAY = sys.modules["difsci.array"]

SRC = '''
import difsci as ds


@ds.kernel
def wave_sim(h: ds.f64[:, :, :], obs: ds.f64[:, :, :], loss: ds.f64[()], k: float):
    T, n, m = h.shape[0], h.shape[1], h.shape[2]
    for t in ds.serial(range(1, T - 1)):
        for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
            lap = h[t, i + 1, j] + h[t, i - 1, j] + h[t, i, j + 1] + h[t, i, j - 1] - 4.0 * h[t, i, j]
            h[t + 1, i, j] = 2.0 * h[t, i, j] - h[t - 1, i, j] + k * lap
        for i, j in ds.ndrange(n, m):
            loss[None] += (h[t + 1, i, j] - obs[t + 1, i, j]) ** 2 * (1.0 + 0.1 * t)
    for i, j in ds.ndrange(n, m):
        loss[None] += h[T - 1, i, j] * h[T - 1, i, j]


@ds.kernel
def wave_reads_early(h: ds.f64[:, :, :], loss: ds.f64[()], k: float):
    """After the loop it reads h[1]: in the adjoint that runs before the steps, on a slice they touch first."""
    T, n, m = h.shape[0], h.shape[1], h.shape[2]
    for t in ds.serial(range(1, T - 1)):
        for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
            lap = h[t, i + 1, j] + h[t, i - 1, j] + h[t, i, j + 1] + h[t, i, j - 1] - 4.0 * h[t, i, j]
            h[t + 1, i, j] = 2.0 * h[t, i, j] - h[t - 1, i, j] + k * lap
    for i, j in ds.ndrange(n, m):
        loss[None] += h[T - 1, i, j] * h[1, i, j]


@ds.kernel
def chain(x: ds.f64[:, :], loss: ds.f64[()]):
    """A 1-D diffusion in time, float64 history of rows."""
    T, n = x.shape[0], x.shape[1]
    for t in ds.serial(range(T - 1)):
        for i in range(1, n - 1):
            x[t + 1, i] = 0.5 * x[t, i] + 0.25 * (x[t, i - 1] + x[t, i + 1])
    for i in range(n):
        loss[None] += ds.sin(x[T - 1, i])


@ds.kernel
def smooth(u: ds.f64[:, :], v: ds.f64[:, :]):
    for i, j in ds.ndrange((1, u.shape[0] - 1), (1, u.shape[1] - 1)):
        v[i, j] = 0.25 * (u[i + 1, j] + u[i - 1, j] + u[i, j + 1] + u[i, j - 1])


@ds.kernel
def field_loss(v: ds.f64[:, :], target: ds.f64[:, :], loss: ds.f64[()]):
    for i, j in ds.ndrange((1, v.shape[0]), v.shape[1]):
        loss[None] += (v[i, j] - target[i, j]) ** 2 * (1.0 + v[i, j])


@ds.kernel
def vec_energy(p: ds.vec2[:], e: ds.f64[()]):
    for i in range(1, p.shape[0]):
        e[None] += ds.dot(p[i], p[i]) * ds.sin(p[i][0])


@ds.kernel
def particles(x: ds.vec2[:, :], v: ds.vec2[:, :], f: ds.vec2[:, :], loss: ds.f64[()], k: float):
    T, n = x.shape[0] - 1, x.shape[1]
    for t in ds.serial(range(T)):
        for s in range(n - 1):
            d = x[t, s + 1] - x[t, s]
            g = k * d * ds.norm(d)
            f[t, s] += g
            f[t, s + 1] -= g
        for i in range(n):
            v[t + 1, i] = 0.99 * v[t, i] + 0.01 * f[t, i]
            x[t + 1, i] = x[t, i] + 0.01 * v[t + 1, i]
    for i in range(n):
        loss[None] += ds.dot(x[T, i], x[T, i]) * (1.0 + 0.1 * i)
'''


@pytest.fixture(scope="module")
def mod(tmp_path_factory):
    return load_kernels(tmp_path_factory.mktemp("lazy"), SRC, "_lazy_zero_kernels")


@contextlib.contextmanager
def lazy(threshold):
    old = ARRAY.LAZY_ZERO
    ARRAY.LAZY_ZERO = threshold
    try:
        yield
    finally:
        ARRAY.LAZY_ZERO = old


EAGER = 1 << 62


# ------------------------------------------------------------------ the array side
def test_zero_grad_is_lazy_only_while_nothing_else_holds_the_gradient():
    a = ds.zeros((600, 500), requires_grad=True)           # 300k elements: above LAZY_ZERO
    a.grad.numpy()[...] = 7.0
    a.zero_grad()
    assert a._grad._pending
    assert np.all(a.grad.numpy() == 0.0) and not a._grad._pending      # .grad writes the zeros
    a.grad.numpy()[...] = 7.0
    view = a.grad.numpy()[3:]                               # a numpy view of the buffer
    a.zero_grad()
    assert not a._grad._pending and np.all(view == 0.0)
    del view
    g = a.grad                                              # the gradient Array itself
    a.grad.numpy()[...] = 7.0
    a.zero_grad()
    assert not a._grad._pending and np.all(g.numpy() == 0.0)
    del g
    part = a[10:20]                                         # a ds.Array view: its grad views the buffer
    a.grad.numpy()[...] = 7.0
    a.zero_grad()
    assert not a._grad._pending and np.all(part.grad.numpy() == 0.0)
    del part
    a.grad.numpy()[...] = 7.0
    a.zero_grad()
    assert a._grad._pending
    assert np.all(a.copy().grad.numpy() == 0.0)             # copy() reads through .grad
    assert np.all(a[5:7].grad.numpy() == 0.0)               # so does indexing


def test_small_gradients_are_zeroed_at_once():
    a = ds.zeros((100,), requires_grad=True)
    a.grad.numpy()[...] = 1.0
    a.zero_grad()
    assert not a._grad._pending and np.all(a.grad.numpy() == 0.0)


@pytest.mark.parametrize("backend_name", ["python", "cpu"])
def test_kernel_given_a_pending_gradient_reads_zeros(backend_name, mod):
    with using(backend_name):
        h = ds.array(np.ones((3, 4, 5)), requires_grad=True)
        out = ds.zeros((), requires_grad=True)
        with lazy(1):
            h.grad.numpy()[...] = 3.0
            h.zero_grad()
            assert h._grad._pending
            mod.wave_sim(h.grad, ds.zeros((3, 4, 5)), out, 0.1)   # h.grad as an ordinary argument
        assert float(out.numpy()) == 0.0


# ------------------------------------------------------------------ the adjoint side
def _rounds(arrays, loss, forward, reset, rounds=2, seed=5):
    """The gradients of ``arrays`` after ``rounds`` rounds of: garbage in every gradient -> zero_grad ->
    ``reset()`` -> ``forward()`` under a Tape -> backward from ``loss``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(rounds):
        for a in arrays:
            a.grad.numpy()[...] = rng.standard_normal(a.grad.numpy().shape)
            a.zero_grad()
        loss.zero_grad()
        loss.fill(0.0)
        reset()
        with ds.Tape() as tape:
            forward()
        tape.backward(loss)
        out.append([a.grad.numpy().copy() for a in arrays])
    return out


def _run(m, kernel, h0, obs0, backend_name, threshold, rounds=2):
    """h.grad after each round (``_rounds``) of one of the time-loop kernels."""
    with using(backend_name), lazy(threshold):
        h = ds.array(h0, requires_grad=True)
        loss = ds.zeros((), requires_grad=True)

        def forward():
            if kernel == "wave_sim":
                m.wave_sim(h, ds.array(obs0), loss, 0.15)
            elif kernel == "wave_reads_early":
                m.wave_reads_early(h, loss, 0.15)
            else:
                m.chain(h, loss)

        def reset():
            h.numpy()[...] = h0          # the kernels overwrite the history
        return [g for g, in _rounds([h], loss, forward, reset, rounds)]


SHAPES = [(2, 3, 3), (3, 4, 5), (5, 6, 7), (4, 70, 9)]


@pytest.mark.parametrize("backend_name", ["python", "cpu"])
@pytest.mark.parametrize("kernel", ["wave_sim", "wave_reads_early", "chain"])
def test_lazily_zeroed_gradients_equal_eager_ones(mod, backend_name, kernel):
    rng = np.random.default_rng(1)
    for shape in SHAPES if backend_name == "python" else SHAPES[2:]:
        if kernel == "chain":
            shape = shape[1:]
        h0, obs0 = rng.standard_normal(shape), rng.standard_normal(shape)
        want = _run(mod, kernel, h0, obs0, backend_name, EAGER)
        got = _run(mod, kernel, h0, obs0, backend_name, 1)
        for w, g in zip(want, got):
            np.testing.assert_array_equal(g, w)
        assert np.any(want[0] != 0.0)


def _adjoint(kernel):
    spec = kernel._last
    (fn, _), = spec._adjoints.values()
    return spec, fn


def test_which_adjoints_take_fresh_gradients(mod):
    with using("python"):
        _run(mod, "wave_sim", np.ones((4, 5, 6)), np.ones((4, 5, 6)), "python", 1, rounds=1)
        _run(mod, "wave_reads_early", np.ones((4, 5, 6)), None, "python", 1, rounds=1)
        _run(mod, "chain", np.ones((4, 6)), None, "python", 1, rounds=1)
    spec, fn = _adjoint(mod.wave_sim)
    assert fresh.takes_fresh(fn) == {"h_bar"}
    (variant, _), = spec._fresh.values()                   # the lazily zeroed run used the variant
    assert variant.fresh == {"h_bar"}
    src = spec._adjoint_compiled(variant, "python")[1]
    assert "h_bar[t - 1, i, j] = _gs" in src and "h_bar zero at entry" in src
    # reading h[1] after the loop: the adjoint touches h_bar[1] before the steps -> zeroed up front instead
    spec, fn = _adjoint(mod.wave_reads_early)
    assert fresh.takes_fresh(fn) == frozenset() and not spec._fresh
    # the 1-D chain's adjoint is gathered too
    spec, fn = _adjoint(mod.chain)
    assert fresh.takes_fresh(fn) == {"x_bar"}


def test_gradients_the_adjoint_cannot_take_get_their_zeros_at_launch(mod):
    with using("python"), lazy(1):
        h = ds.array(np.ones((4, 5, 6)), requires_grad=True)
        loss = ds.zeros((), requires_grad=True)
        with ds.Tape() as tape:
            mod.wave_sim(h, ds.array(np.ones((4, 5, 6))), loss, 0.15)
        tape.backward(loss)
        h.grad.numpy()[...] = 5.0
        h.zero_grad()
        assert h._grad._pending
        spec, fn = _adjoint(mod.wave_sim)
        ok = fresh.takes_fresh(fn)
        assert ok == {"h_bar"}
        fn._takes_fresh = frozenset()                     # the variant unavailable: zeros written at launch
        try:
            loss.zero_grad()
            tape.backward(loss)
        finally:
            fn._takes_fresh = ok
        assert not h._grad._pending
        want = _run(mod, "wave_sim", np.ones((4, 5, 6)), np.ones((4, 5, 6)), "python", EAGER, rounds=1)[0]
        np.testing.assert_array_equal(h.grad.numpy(), want)


def _two_kernels(m, u0, t0, p0, backend_name, threshold):
    """smooth -> field_loss, and vec_energy: the gradients of u, v, p after each round (``_rounds``)."""
    with using(backend_name), lazy(threshold):
        u = ds.array(u0, requires_grad=True)
        v = ds.zeros(u0.shape, requires_grad=True)
        p = ds.array(p0, dtype=ds.vec2, requires_grad=True)
        loss = ds.zeros((), requires_grad=True)

        def forward():
            m.smooth(u, v)
            m.field_loss(v, ds.array(t0), loss)
            m.vec_energy(p, loss)
        return _rounds([u, v, p], loss, forward, lambda: None, seed=9)


@pytest.mark.parametrize("backend_name", ["python", "cpu"])
def test_first_touch_at_the_loops_own_element(mod, backend_name):
    """The first adjoint touching v.grad and p.grad writes each element at its own index (v_bar[i, j],
    p_bar[i, 0..1]): each iteration zeroes its element first, row 0 / element 0 (outside the loops) are
    zeroed before; u.grad (a gathered stencil, not at the own element) gets its zeros at launch."""
    rng = np.random.default_rng(3)
    for shape, n in (((3, 4), 3), ((70, 9), 5), ((600, 500), 300)):
        u0, t0, p0 = rng.standard_normal(shape), rng.standard_normal(shape), rng.standard_normal((n, 2))
        want = _two_kernels(mod, u0, t0, p0, backend_name, EAGER)
        got = _two_kernels(mod, u0, t0, p0, backend_name, 1)
        for w, g in zip(want, got):
            for a, b in zip(w, g):
                np.testing.assert_array_equal(b, a)
        assert np.any(want[0][0] != 0.0) and np.any(want[0][2] != 0.0)
    assert fresh.takes_fresh(_adjoint(mod.field_loss)[1]) == {"v_bar"}
    assert fresh.takes_fresh(_adjoint(mod.vec_energy)[1]) == {"p_bar"}
    assert "u_bar" not in fresh.takes_fresh(_adjoint(mod.smooth)[1])


def _particles(m, x0, backend_name, threshold):
    """The gradients of x, v, f after each round (``_rounds``) of the particle chain, 6 steps."""
    with using(backend_name), lazy(threshold):
        T = 6
        X = np.zeros((T + 1,) + x0.shape)
        X[0] = x0
        x = ds.array(X, dtype=ds.vec2, requires_grad=True)
        v = ds.zeros((T + 1, x0.shape[0]), dtype=ds.vec2, requires_grad=True)
        f = ds.zeros((T + 1, x0.shape[0]), dtype=ds.vec2, requires_grad=True)
        loss = ds.zeros((), requires_grad=True)
        return _rounds([x, v, f], loss, lambda: m.particles(x, v, f, loss, 0.5), lambda: f.fill(0.0), seed=11)


@pytest.mark.parametrize("backend_name", ["python", "cpu"])
def test_time_slices_first_touched_at_the_loops_own_element(mod, backend_name):
    """In the particles' adjoint step, the update's adjoint touches x_bar[t, i], v_bar[t, i] and f_bar[t, i]
    first, each at its own element: each iteration zeroes its element (both components) first."""
    for n in (2, 5, 70):
        x0 = np.random.default_rng(n).standard_normal((n, 2))
        want = _particles(mod, x0, backend_name, EAGER)
        got = _particles(mod, x0, backend_name, 1)
        for w, g in zip(want, got):
            for a, b in zip(w, g):
                np.testing.assert_array_equal(b, a)
        assert np.any(want[0][0][0] != 0.0)
    assert fresh.takes_fresh(_adjoint(mod.particles)[1]) == {"x_bar", "v_bar", "f_bar"}


def test_a_variant_that_fails_falls_back_to_zeros_at_launch(tmp_path, monkeypatch):
    """An optimisation must never break a backward: if the variant does not compile (numba raises), or the
    analysis itself fails, the gradient gets its zeros written and the ordinary adjoint runs."""
    import numba
    mod = load_kernels(tmp_path, SRC, "_lazy_zero_fallback")      # nothing compiled or prepared yet

    from difsci.lang import kernel as K
    real = K._Spec._adjoint_compiled

    def broken(self, fn, backend):
        if fn.fresh:
            def fails(*a):
                raise numba.core.errors.TypingError("a variant that does not compile")
            return fails, "", {}
        return real(self, fn, backend)

    h0, obs0 = np.random.default_rng(2).standard_normal((2, 5, 6, 7))
    want = _run(mod, "wave_sim", h0, obs0, "cpu", EAGER)
    monkeypatch.setattr(K._Spec, "_adjoint_compiled", broken)
    got = _run(mod, "wave_sim", h0, obs0, "cpu", 1)
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)
    spec, fn = _adjoint(mod.wave_sim)
    assert fn._takes_fresh == frozenset()          # not tried again
    monkeypatch.setattr(K._Spec, "_adjoint_compiled", real)
    del fn._takes_fresh                             # recompute: now the analysis itself raises

    def raising(*a, **k):
        raise RuntimeError("analysis bug")
    monkeypatch.setattr(fresh, "gather", raising)
    got = _run(mod, "wave_sim", h0, obs0, "cpu", 1)
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)
    assert fn._takes_fresh == frozenset() and "analysis bug" in fn._takes_fresh_error
    del fn._takes_fresh
