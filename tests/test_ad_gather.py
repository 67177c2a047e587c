"""The gather form of stencil adjoints (difsci/lang/passes/gather.py).

Each kernel is checked three ways: its gathered adjoint equals the scatter
form it replaces (the same kernel compiled with the pass off), its gradient
matches central finite differences, and the generated source says which form
was chosen.  Sizes run down to empty loops, where the edge logic of the
gathered loops (min/max splits, shape checks) is all there is.
"""
from __future__ import annotations

import numpy as np
import pytest

import difsci as ds
from difsci.lang.passes import gather

from gradcheck import load_kernels, tape_check, tape_grads, using

SRC = '''
import difsci as ds


@ds.kernel
def wave_step(h: ds.f64[:, :, :], t: int, k: float):
    n, m = h.shape[1], h.shape[2]
    for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
        lap = h[t, i + 1, j] + h[t, i - 1, j] + h[t, i, j + 1] + h[t, i, j - 1] - 4.0 * h[t, i, j]
        h[t + 1, i, j] = 2.0 * h[t, i, j] - h[t - 1, i, j] + k * lap


@ds.kernel
def sumsq3(h: ds.f64[:, :, :], loss: ds.f64[()]):
    for s, i, j in ds.ndrange(h.shape[0], h.shape[1], h.shape[2]):
        loss[None] += h[s, i, j] * h[s, i, j] * (1.0 + 0.1 * s)


@ds.kernel
def diffuse1(x: ds.f64[:], c: ds.f64[()], y: ds.f64[:]):
    for i in range(1, x.shape[0] - 1):
        y[i] = c[None] * (x[i - 1] - 2.0 * x[i] + x[i + 1]) + ds.sin(x[i]) * x[i + 1]


@ds.kernel
def nine(x: ds.f64[:, :], w: ds.f64[:, :], y: ds.f64[:, :]):
    for i, j in ds.ndrange((1, x.shape[0] - 1), (1, x.shape[1] - 1)):
        s = 0.0
        for a in ds.static(range(3)):
            for b in ds.static(range(3)):
                s += w[a, b] * x[i + a - 1, j + b - 1]
        y[i, j] = s * s


@ds.kernel
def seven(x: ds.f32[:, :, :], y: ds.f32[:, :, :]):
    n0, n1, n2 = x.shape[0], x.shape[1], x.shape[2]
    for i, j, k in ds.ndrange((1, n0 - 1), (1, n1 - 1), (1, n2 - 1)):
        y[i, j, k] = (x[i + 1, j, k] + x[i - 1, j, k] + x[i, j + 1, k] + x[i, j - 1, k]
                      + x[i, j, k + 1] + x[i, j, k - 1] - 6.0 * x[i, j, k]) * x[i, j, k]


@ds.kernel
def periodic(x: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        y[i] = x[i - 1] * x[i] + x[i]


@ds.kernel
def flat(x: ds.f64[:], y: ds.f64[:], S: int, N: int):
    for s in ds.serial(range(S)):
        for n in range(N):
            y[s * N + n] += x[s * N + n] * x[s * N + n]


@ds.kernel
def flat_shifted(x: ds.f64[:], y: ds.f64[:], S: int, N: int):
    for s in ds.serial(range(S)):
        for n in range(N):
            y[s * N + n] += x[s * N + n]
            y[s * N + n + 1] += x[n]


@ds.kernel
def sumsq(y: ds.f64[:], loss: ds.f64[()]):
    for i in range(y.shape[0]):
        loss[None] += y[i] * y[i]


@ds.kernel
def sumsq2(y: ds.f64[:, :], loss: ds.f64[()]):
    for i, j in ds.ndrange(y.shape[0], y.shape[1]):
        loss[None] += y[i, j] * y[i, j]


@ds.kernel
def sumsq3f(y: ds.f32[:, :, :], loss: ds.f64[()]):
    for i, j, k in ds.ndrange(y.shape[0], y.shape[1], y.shape[2]):
        loss[None] += y[i, j, k] * y[i, j, k]


@ds.kernel
def wave_if(h: ds.f64[:, :, :], t: int, k: float):
    n, m = h.shape[1], h.shape[2]
    for i, j in ds.ndrange(n, m):
        if i > 0 and i < n - 1 and j > 0 and j < m - 1:
            lap = h[t, i + 1, j] + h[t, i - 1, j] + h[t, i, j + 1] + h[t, i, j - 1] - 4.0 * h[t, i, j]
            h[t + 1, i, j] = 2.0 * h[t, i, j] - h[t - 1, i, j] + k * lap
        else:
            h[t + 1, i, j] = 0.5 * h[t, i, j]


@ds.kernel
def wave_bc(h: ds.f64[:, :, :], t: int, k: float):
    n, m = h.shape[1], h.shape[2]
    for i, j in ds.ndrange(n, m):
        if i == 0 or i == n - 1 or j == 0 or j == m - 1:
            h[t + 1, i, j] = 0.0
        else:
            lap = h[t, i + 1, j] + h[t, i - 1, j] + h[t, i, j + 1] + h[t, i, j - 1] - 4.0 * h[t, i, j]
            h[t + 1, i, j] = ds.tanh(h[t, i, j] + k * lap)


@ds.kernel
def half_guard(x: ds.f64[:, :], y: ds.f64[:, :]):
    for i, j in ds.ndrange(x.shape[0], x.shape[1]):
        if j > 0:
            y[i, j] = x[i - 1, j] * x[i, j - 1]


@ds.kernel
def wave_sim(h: ds.f64[:, :, :], obs: ds.f64[:, :, :], loss: ds.f64[()], k: float):
    T, n, m = h.shape[0], h.shape[1], h.shape[2]
    for t in ds.serial(range(1, T - 1)):
        for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
            lap = h[t, i + 1, j] + h[t, i - 1, j] + h[t, i, j + 1] + h[t, i, j - 1] - 4.0 * h[t, i, j]
            h[t + 1, i, j] = 2.0 * h[t, i, j] - h[t - 1, i, j] + k * lap
        for i, j in ds.ndrange(n, m):
            loss[None] += (h[t + 1, i, j] - obs[t + 1, i, j]) ** 2 * (1.0 + 0.1 * t)


@ds.kernel
def coupled(u: ds.f64[:, :], v: ds.f64[:, :], k: float):
    T, n = u.shape[0], u.shape[1]
    for t in ds.serial(range(T - 1)):
        for i in range(1, n - 1):
            v[t + 1, i] = v[t, i] + k * (u[t, i + 1] - 2.0 * u[t, i] + u[t, i - 1])
        for i in range(1, n - 1):
            u[t + 1, i] = u[t, i] + k * ds.sin(v[t + 1, i + 1] - v[t + 1, i - 1])
'''


@pytest.fixture(scope="module")
def mods(tmp_path_factory):
    """The kernels twice: compiled with the pass on, and off (each Kernel keeps its compiled adjoints)."""
    d = tmp_path_factory.mktemp("gather")
    return {"on": load_kernels(d, SRC, "_gather_on"), "off": load_kernels(d, SRC, "_gather_off")}


def _run(mods, which, build, inputs):
    gather.ENABLED = which == "on"
    try:
        return tape_grads(lambda **a: build(mods[which], **a), inputs)
    finally:
        gather.ENABLED = True


def _wave(m, h):
    loss = ds.zeros((), requires_grad=True)
    for t in range(1, h.shape[0] - 1):
        m.wave_step(h, t, 0.15)
    m.sumsq3(h, loss)
    return loss


def _through(kernel, loss_kernel, x, *rest, dtype=None):
    """``loss_kernel(y)`` where ``kernel(x, *rest, y)`` writes ``y``, shaped like ``x``."""
    y = ds.zeros(x.shape, dtype=dtype, requires_grad=True)
    loss = ds.zeros((), requires_grad=True)
    kernel(x, *rest, y)
    loss_kernel(y, loss)
    return loss


def _diffuse(m, x, c):
    return _through(m.diffuse1, m.sumsq, x, c)


def _nine(m, x, w):
    return _through(m.nine, m.sumsq2, x, w)


def _seven(m, x):
    return _through(m.seven, m.sumsq3f, x, dtype=ds.f32)


def _periodic(m, x):
    return _through(m.periodic, m.sumsq, x)


def _same(mods, build, inputs, rtol=1e-12):
    (l1, g1), (l0, g0) = _run(mods, "on", build, inputs), _run(mods, "off", build, inputs)
    assert l1 == l0
    for k in g0:
        np.testing.assert_allclose(g1[k], g0[k], rtol=rtol, atol=rtol * max(1.0, np.abs(g0[k]).max()), err_msg=k)
    return g1


RNG = np.random.default_rng(7)


@pytest.mark.parametrize("shape", [(4, 1, 1), (4, 2, 3), (5, 3, 3), (5, 4, 5), (6, 6, 7)])
def test_wave_gathered_equals_scatter_every_size(mods, shape):
    with using("python"):
        _same(mods, _wave, {"h": RNG.standard_normal(shape)})


@pytest.mark.parametrize("n", [1, 2, 3, 4, 9])
def test_1d_with_parameter_gradient_every_size(mods, n):
    with using("python"):
        _same(mods, _diffuse, {"x": RNG.standard_normal(n), "c": np.array(0.7)})


@pytest.mark.parametrize("shape", [(2, 2), (3, 3), (4, 6), (7, 5)])
def test_nine_point_every_size(mods, shape):
    with using("python"):
        _same(mods, _nine, {"x": RNG.standard_normal(shape), "w": RNG.standard_normal((3, 3))})


def test_seven_point_3d_float32(mods):
    with using("python"):
        _same(mods, _seven, {"x": RNG.standard_normal((4, 5, 6)).astype(np.float32)}, rtol=1e-5)


@pytest.mark.parametrize("backend_name", ["python", "cpu"])
def test_gathered_gradients_match_finite_differences(mods, backend_name):
    gather.ENABLED = True
    with using(backend_name):
        tape_check(lambda **a: _wave(mods["on"], **a), {"h": RNG.standard_normal((6, 7, 8))})
        tape_check(lambda **a: _diffuse(mods["on"], **a), {"x": RNG.standard_normal(11), "c": np.array(0.3)})
        tape_check(lambda **a: _nine(mods["on"], **a),
                   {"x": RNG.standard_normal((9, 8)), "w": RNG.standard_normal((3, 3))})
        # the parallel loop (rows >= 64): the cpu backend's prange path
        tape_check(lambda **a: _wave(mods["on"], **a), {"h": RNG.standard_normal((4, 70, 9))}, ndirs=1)
        src = mods["on"].wave_step.adjoint.source
        assert "gather form" in src and "atomic" not in src and "_phase" not in src


def test_overwritten_element_gradients_are_zeroed(mods):
    """``h[t + 1]`` is overwritten: its gradient after backward is zero inside (only the last write counts)."""
    with using("python"):
        h0 = RNG.standard_normal((5, 6, 6))
        _, g = _run(mods, "on", _wave, {"h": h0})
        assert np.all(g["h"][2:, 1:-1, 1:-1] == 0.0)
        assert np.any(g["h"][2:, 0, :] != 0.0)       # the boundary ring of later slices is read, never written


def test_wrapping_index_keeps_scatter_form(mods):
    """``x[i - 1]`` at ``i = 0`` reads ``x[-1]``: gathering would put two loop iterations on one element."""
    with using("python"):
        g = _same(mods, _periodic, {"x": RNG.standard_normal(6)})
        assert "gather form" not in mods["on"].periodic.adjoint.source
        tape_check(lambda **a: _periodic(mods["on"], **a), {"x": RNG.standard_normal(6)})
        assert np.all(np.isfinite(g["x"]))


def test_not_applied_where_updates_are_race_free(mods):
    with using("python"):
        _same(mods, _diffuse, {"x": RNG.standard_normal(5), "c": np.array(0.7)})
        assert "gather form" not in mods["on"].sumsq.adjoint.source
        assert "gather form" in mods["on"].diffuse1.adjoint.source


@pytest.mark.parametrize("backend_name", ["python", "cpu"])
def test_flattened_index_is_race_free(mods, backend_name):
    """``y[s * N + n]`` with ``n`` the parallel index: iterations own their elements (no atomics), and
    ``y[s * N + n + 1]`` next to it is not (atomics), on the parallel path (N >= 1024)."""
    S, N = 2, 1100
    x = RNG.standard_normal(S * N + 1)
    m = mods["on"]
    with using(backend_name):
        y = np.zeros(S * N + 1)
        m.flat(x, y, S, N)
        np.testing.assert_allclose(y[:-1], x[:-1] ** 2, rtol=1e-15)
        assert "atomic" not in m.flat.source and "_part_" not in m.flat.source
        y = np.zeros(S * N + 1)
        m.flat_shifted(x, y, S, N)
        want = np.zeros(S * N + 1)
        want[:-1] += x[:-1]
        for s in range(S):
            want[s * N + 1:(s + 1) * N + 1] += x[:N]
        np.testing.assert_allclose(y, want, rtol=1e-14)
        assert "atomic_add" in m.flat_shifted.source or "_part_y" in m.flat_shifted.source
        tape_check(lambda **a: _flat(m, **a), {"x": RNG.standard_normal(S * N + 1)}, ndirs=1)


def _flat(m, x):
    y = ds.zeros(x.shape, requires_grad=True)
    loss = ds.zeros((), requires_grad=True)
    m.flat(x, y, 2, 1100)
    m.sumsq(y, loss)
    return loss


# ------------------------------------------------------- bodies with branches
def _wave_branchy(kernel_name):
    def build(m, h):
        loss = ds.zeros((), requires_grad=True)
        for t in range(1, h.shape[0] - 1):
            getattr(m, kernel_name)(h, t, 0.15)
        m.sumsq3(h, loss)
        return loss
    return build


@pytest.mark.parametrize("name", ["wave_if", "wave_bc"])
@pytest.mark.parametrize("shape", [(3, 1, 1), (3, 2, 3), (4, 3, 3), (4, 5, 6), (3, 70, 9)])
def test_branchy_stencils_gathered_every_size(mods, name, shape):
    """``if`` around the stencil (interior / boundary condition) over the whole grid: updates at ``i - 1``
    are kept off -1 by the condition (``i > 0``; the else-branch of ``i == 0 or ...``), so the loop
    gathers, starting at 0."""
    with using("python"):
        _same(mods, _wave_branchy(name), {"h": RNG.standard_normal(shape)})
        src = getattr(mods["on"], name).adjoint.source
        assert "gather form" in src and "_phase" not in src and "atomic" not in src


@pytest.mark.parametrize("backend_name", ["python", "cpu"])
def test_branchy_stencils_finite_differences(mods, backend_name):
    gather.ENABLED = True
    with using(backend_name):
        for name in ("wave_if", "wave_bc"):
            tape_check(lambda **a: _wave_branchy(name)(mods["on"], **a), {"h": RNG.standard_normal((5, 6, 7))})
            tape_check(lambda **a: _wave_branchy(name)(mods["on"], **a), {"h": RNG.standard_normal((3, 70, 9))},
                       ndirs=1)


def test_guard_on_the_other_axis_keeps_scatter_form(mods):
    """``if j > 0`` keeps ``x[i, j - 1]`` in range but not ``x[i - 1, j]`` at ``i = 0`` (it wraps to the
    last row): the pass must not gather."""
    with using("python"):
        _same(mods, lambda m, x: _through(m.half_guard, m.sumsq2, x), {"x": RNG.standard_normal((4, 5))})
        assert "gather form" not in mods["on"].half_guard.adjoint.source
        tape_check(lambda **a: _through(mods["on"].half_guard, mods["on"].sumsq2, **a),
                   {"x": RNG.standard_normal((4, 5))})


def test_lower_bounds_from_conditions():
    from difsci.lang import ir
    from difsci.lang import types as T
    i, j = ir.Var(T.i64, "i"), ir.Var(T.i64, "j")

    def c(v):
        return ir.Const(T.i64, v)

    def op(o, a, b):
        return ir.Op(T.boolean, o, (a, b))

    lb = gather._lower_bound
    assert lb("i", 0, ((op("gt", i, c(0)), True),), {}) == 1
    assert lb("i", 0, ((op("lt", c(1), i), True),), {}) == 2            # 1 < i
    assert lb("i", 0, ((op("gt", i, c(0)), False),), {}) == 0           # else of i > 0: nothing
    assert lb("i", 0, ((op("lt", i, c(2)), False),), {}) == 2           # else of i < 2: i >= 2
    bc = op("or", op("eq", i, c(0)), op("eq", j, c(0)))
    assert lb("i", 0, ((bc, False),), {}) == 1 and lb("j", 0, ((bc, False),), {}) == 1
    assert lb("i", 0, ((bc, True),), {}) == 0                           # i == 0 or ...: nothing
    assert lb("i", 0, ((op("and", op("ne", i, c(0)), op("ne", i, c(1))), True),), {}) == 2
    assert lb("i", 0, ((ir.Var(T.boolean, "_c0"), True),), {"_c0": op("ge", i, c(3))}) == 3
    assert lb("i", 0, ((ir.Op(T.boolean, "not", (op("le", i, c(0)),)), True),), {}) == 1
    assert lb("i", 0, ((op("gt", i, j), True),), {}) == 0               # not a constant bound


# ------------------------------------------- seeds zeroed one step later (ds.serial)
def _wave_sim(m, h, obs):
    loss = ds.zeros((), requires_grad=True)
    m.wave_sim(h, obs, loss, 0.15)
    m.sumsq3(h, loss)
    return loss


def _coupled(m, u, v):
    loss = ds.zeros((), requires_grad=True)
    m.coupled(u, v, 0.2)
    m.sumsq2(u, loss)
    m.sumsq2(v, loss)
    return loss


DEFERRED = "zeroed now that every iteration has read them"


@pytest.mark.parametrize("shape", [(2, 3, 3), (3, 3, 4), (4, 2, 3), (5, 4, 5), (6, 6, 7)])
def test_time_loop_deferred_zeroing_equals_scatter_every_size(mods, shape):
    """A ds.serial loop of stencils: each step's seeds are zeroed in the next step's gathered loop (and the
    last step's after the loop; none when the loop is empty, T = 2)."""
    with using("python"):
        g = _same(mods, _wave_sim, {"h": RNG.standard_normal(shape), "obs": RNG.standard_normal(shape)})
        if shape[0] >= 3 and min(shape[1:]) >= 3:
            assert np.all(g["h"][2:, 1:-1, 1:-1] == 0.0)       # overwritten: zero, after the last step too
        src = mods["on"].wave_sim.adjoint.source
        # no zeroing loop left in the time loop: the next step's gathered loop zeroes h_bar[t + 2]
        assert DEFERRED in src and "h_bar[t + 2, i, j] = 0.0" in src and "h_bar[t + 1, i, j] = 0.0" not in src


@pytest.mark.parametrize("shape", [(1, 4), (2, 3), (3, 5), (6, 9)])
def test_two_arrays_deferred_in_one_time_loop(mods, shape):
    with using("python"):
        _same(mods, _coupled, {"u": RNG.standard_normal(shape), "v": RNG.standard_normal(shape)})
        assert mods["on"].coupled.adjoint.source.count(DEFERRED) == 2


@pytest.mark.parametrize("backend_name", ["python", "cpu"])
def test_time_loop_deferred_zeroing_finite_differences(mods, backend_name):
    gather.ENABLED = True
    with using(backend_name):
        tape_check(lambda **a: _wave_sim(mods["on"], **a),
                   {"h": RNG.standard_normal((5, 6, 7)), "obs": RNG.standard_normal((5, 6, 7))})
        tape_check(lambda **a: _coupled(mods["on"], **a),
                   {"u": RNG.standard_normal((5, 8)), "v": RNG.standard_normal((5, 8))})
        # rows >= 64: the cpu backend's prange path, where the zeroing shares the loop with the gather
        tape_check(lambda **a: _wave_sim(mods["on"], **a),
                   {"h": RNG.standard_normal((4, 70, 9)), "obs": RNG.standard_normal((4, 70, 9))}, ndirs=1)


def _time_loop_case(extra_before=(), extra_after=()):
    """``for t (reverse): G: a[t, i] += a[t + 1, i]; Z: a[t + 1, i] = 0`` with extra statements around."""
    from difsci.lang import ir
    from difsci.lang import types as T
    t, i, n = ir.Var(T.i64, "t"), ir.Var(T.i64, "i"), ir.Var(T.i64, "n")
    zero, one = ir.Const(T.i64, 0), ir.Const(T.i64, 1)
    t1 = ir.Op(T.i64, "add", (t, one))
    g = ir.ParFor(("i",), ((zero, n),), [ir.Store("a", (t, i), ir.Load(T.f64, "a", (t1, i)), "add")])
    z = ir.ParFor(("i",), ((zero, n),), [ir.Store("a", (t1, i), ir.Const(T.f64, 0.0))])
    body = list(extra_before) + [g, z] + list(extra_after)
    tl = ir.TimeLoop("t", one, n, body, reverse=True)
    return tl, body, len(extra_before), z


def test_deferral_refused_where_the_next_step_touches_the_zeroed_slice():
    from difsci.lang import ir
    from difsci.lang import types as T
    t, i = ir.Var(T.i64, "t"), ir.Var(T.i64, "i")

    def at(c):
        return ir.Op(T.i64, "add", (t, ir.Const(T.i64, c))) if c else t

    def load(c):
        return ir.ParFor(("i",), ((ir.Const(T.i64, 0), ir.Var(T.i64, "n")),),
                         [ir.Store("b", (i,), ir.Load(T.f64, "a", (at(c), i)), "add")])

    # alone, and with reads the deferral does not disturb
    assert gather._deferrable(*_time_loop_case()[:3], _time_loop_case()[3])
    for before, after in [((load(3),), ()), ((), (load(2),)), ((load(1),), (load(0),))]:
        tl, body, g, z = _time_loop_case(before, after)
        assert gather._deferrable(tl, body, g, z), (before, after)
    # the next step reads a[t + 2] (this step's a[t + 1]) before its gathered loop; this step reads
    # a[t + 1] after the zeroing; an index the analysis cannot place on the time axis
    for before, after in [((load(2),), ()), ((), (load(1),))]:
        tl, body, g, z = _time_loop_case(before, after)
        assert not gather._deferrable(tl, body, g, z), (before, after)
    odd = ir.ParFor(("i",), ((ir.Const(T.i64, 0), ir.Var(T.i64, "n")),),
                    [ir.Store("b", (i,), ir.Load(T.f64, "a", (ir.Const(T.i64, 0), i)), "add")])
    tl, body, g, z = _time_loop_case((), (odd,))
    assert not gather._deferrable(tl, body, g, z)


# ------------------------------------------------------------- random stencils
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

STENCIL = '''
import difsci as ds


@ds.kernel
def st(x: ds.f64[:, :], y: ds.f64[:, :]):
    for i, j in ds.ndrange(({lo0}, x.shape[0] - {m0}), ({lo1}, x.shape[1] - {m1})):
{body}


@ds.kernel
def loss2(y: ds.f64[:, :], out: ds.f64[()]):
    for i, j in ds.ndrange(y.shape[0], y.shape[1]):
        out[None] += ds.sin(y[i, j]) + 0.5 * y[i, j] * y[i, j]
'''
FS = ["{}", "ds.sin({})", "{0} * {0}", "ds.tanh(2.0 * {})"]
GUARDS = ["i > 0", "i >= 2 and j > 0", "i > 0 and j > 0 and i < x.shape[0] - 1", "j > 1",
          "not (i == 0 or j == 0)", "(i + j) % 2 == 0", "i != 0 and i != 1 and j >= 2", "x[i, j] > 0.0"]


@st.composite
def stencils(draw):
    offs = draw(st.lists(st.tuples(st.integers(-2, 2), st.integers(-2, 2)), min_size=1, max_size=5, unique=True))
    # mostly no read below index 0; sometimes one that wraps around, where the pass must step aside
    lo0 = max(0, -min(a for a, _ in offs)) + draw(st.integers(0, 1))
    lo1 = max(0, -min(b for _, b in offs)) + draw(st.integers(0, 1))
    if draw(st.integers(0, 3)) == 0:
        lo0, lo1 = draw(st.integers(0, 1)), draw(st.integers(0, 1))
    # no read past the upper end; below 0 an index wraps around (numpy's rule), which the pass must refuse
    m0 = max(0, max(a for a, _ in offs)) + draw(st.integers(0, 1))
    m1 = max(0, max(b for _, b in offs)) + draw(st.integers(0, 1))
    terms = []
    for k, (a, b) in enumerate(offs):
        ix = f"x[i{a:+d}, j{b:+d}]".replace("+0", "").replace("-0", "")
        terms.append(f"{0.3 + 0.2 * k:.1f} * " + draw(st.sampled_from(FS)).format(ix))
    lines = [f"s = {' + '.join(terms)}"]
    if draw(st.booleans()):
        lines.append(f"s = s * x[i, j] + {draw(st.sampled_from(FS)).format('s')}")
    lines.append("y[i, j] = s")
    scatter = draw(st.booleans())
    if scatter:                   # a scatter of the forward itself
        a, b = draw(st.sampled_from(offs))
        lines.append(f"y[i{a:+d}, j{b:+d}] += 0.1 * s".replace("+0", "").replace("-0", ""))
        lines[-2] = "y[i, j] += s"
    if draw(st.integers(0, 2)) == 0:   # under a condition on the loop indices (some keep x[i - 1] off -1)
        cond = draw(st.sampled_from(GUARDS))
        lines = [f"if {cond}:"] + ["    " + ln for ln in lines]
        if draw(st.booleans()):
            # `+=` where the forward scatters too: mixing `=` and `+=` on one element from two
            # iterations of a parallel loop is a race, whose result (and gradient) depends on the order
            lines += ["else:", f"    y[i, j] {'+=' if scatter else '='} 0.5 * x[i, j]"]
    body = "\n".join("        " + ln for ln in lines)
    shape = (draw(st.integers(3, 7)), draw(st.integers(3, 7)))   # x[-2] must exist
    return STENCIL.format(lo0=lo0, lo1=lo1, m0=m0, m1=m1, body=body), shape


_gen = [0]


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=stencils(), seed=st.integers(0, 100))
def test_random_stencils_gather_equals_scatter(case, seed, tmp_path_factory):
    """Random 2-D stencils (offsets in [-2, 2]^2, start 0..2, sizes 3..7, forward scatters too, some under
    an ``if``):
    the gathered adjoint equals the scatter form and finite differences, wherever the pass applies."""
    src, shape = case

    def build(m, x):
        y = ds.zeros(shape, requires_grad=True)
        out = ds.zeros((), requires_grad=True)
        m.st(x, y)
        m.loss2(y, out)
        return out

    _random_case(tmp_path_factory, "gather_random", src, shape, build, "x", seed)


def _random_case(tmp_path_factory, tag, src, shape, build, name, seed):
    """Compile ``src`` with the pass on and off; ``build(module, **{name: input})`` gives the loss: the
    gradients agree, and the gathered one matches finite differences (the kernel printed on failure)."""
    d = tmp_path_factory.getbasetemp() / tag
    d.mkdir(exist_ok=True)
    _gen[0] += 1
    mods = {w: load_kernels(d, src, f"_{tag}_{w}_{_gen[0]}") for w in ("on", "off")}
    inputs = {name: np.random.default_rng(seed).standard_normal(shape)}
    with using("python"):
        try:
            (l1, g1), (l0, g0) = _run(mods, "on", build, inputs), _run(mods, "off", build, inputs)
            np.testing.assert_allclose(g1[name], g0[name], rtol=1e-12, atol=1e-12)
            assert l1 == l0
            tape_check(lambda **a: build(mods["on"], **a), inputs, ndirs=1, expect_nonzero=False)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- kernel ---\n{src}\nshape {shape}") from None


TIME_STENCIL = '''
import difsci as ds


@ds.kernel
def sim(h: ds.f64[:, :, :], acc: ds.f64[()]):
    for t in ds.serial(range({t0}, h.shape[0] - 1)):
        for i, j in ds.ndrange(({lo0}, h.shape[1] - {m0}), ({lo1}, h.shape[2] - {m1})):
{body}
{observe}


@ds.kernel
def loss3(h: ds.f64[:, :, :], acc: ds.f64[()], out: ds.f64[()]):
    for s, i, j in ds.ndrange(h.shape[0], h.shape[1], h.shape[2]):
        out[None] += ds.sin(h[s, i, j]) + 0.5 * h[s, i, j] * h[s, i, j] + acc[None] / (h.shape[0] * h.shape[1] * h.shape[2])
'''
TFS = ["{}", "ds.sin({})", "ds.tanh(2.0 * {})"]


@st.composite
def time_stencils(draw):
    """``h[t + 1] = f(h[t] at offsets, h[t - 1])`` in a ds.serial loop, sometimes with a per-step observation."""
    offs = draw(st.lists(st.tuples(st.integers(-1, 1), st.integers(-1, 1)), min_size=1, max_size=4, unique=True))
    lo0 = max(0, -min(a for a, _ in offs)) + draw(st.integers(0, 1))
    lo1 = max(0, -min(b for _, b in offs)) + draw(st.integers(0, 1))
    m0 = max(0, max(a for a, _ in offs)) + draw(st.integers(0, 1))
    m1 = max(0, max(b for _, b in offs)) + draw(st.integers(0, 1))
    t0 = draw(st.integers(0, 1))
    terms = []
    for k, (a, b) in enumerate(offs):
        ix = f"h[t, i{a:+d}, j{b:+d}]".replace("+0", "").replace("-0", "")
        terms.append(f"{0.2 + 0.15 * k:.2f} * " + draw(st.sampled_from(TFS)).format(ix))
    if t0 == 1 and draw(st.booleans()):
        terms.append("-0.5 * h[t - 1, i, j]")
    body = f"            h[t + 1, i, j] = {' + '.join(terms)}"
    observe = ""
    if draw(st.booleans()):      # a second loop in the step: an adjoint statement before the gathered loop
        observe = ("        for i, j in ds.ndrange(h.shape[1], h.shape[2]):\n"
                   "            acc[None] += 0.1 * h[t + 1, i, j] * h[t + 1, i, j]")
    shape = (draw(st.integers(2, 5)), draw(st.integers(3, 6)), draw(st.integers(3, 6)))
    src = TIME_STENCIL.format(t0=t0, lo0=lo0, lo1=lo1, m0=m0, m1=m1, body=body, observe=observe)
    return src, shape


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=time_stencils(), seed=st.integers(0, 100))
def test_random_time_loop_stencils_gather_equals_scatter(case, seed, tmp_path_factory):
    """Random stencils stepped in a ds.serial loop, where each step's seeds are zeroed a step late: the
    adjoint equals the scatter form (pass off) and finite differences."""
    src, shape = case

    def build(m, h):
        acc = ds.zeros((), requires_grad=True)
        out = ds.zeros((), requires_grad=True)
        m.sim(h, acc)
        m.loss3(h, acc, out)
        return out

    _random_case(tmp_path_factory, "gather_time", src, shape, build, "h", seed)


@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=time_stencils(), seed=st.integers(0, 100))
def test_random_time_loop_stencils_lazily_zeroed_gradient(case, seed, tmp_path_factory):
    """The same random stencils, backward twice from a gradient full of garbage that ``zero_grad`` only
    marked zero (the adjoint zeroes it at each slice's first touch, passes/fresh.py): bit for bit the
    gradients an eager ``zero_grad`` gives."""
    import sys
    arr = sys.modules["difsci.array"]
    src, shape = case
    # the loss on the last slice, in the same kernel: its adjoint is the first to touch h.grad
    head = "def sim(h: ds.f64[:, :, :], acc: ds.f64[()]):"
    assert head in src and "\n\n\n@ds.kernel\ndef loss3" in src
    src = src.replace(head, "def sim(h: ds.f64[:, :, :], acc: ds.f64[()], out: ds.f64[()]):")
    src = src.replace("\n\n\n@ds.kernel\ndef loss3", (
        "\n    for i, j in ds.ndrange(h.shape[1], h.shape[2]):\n"
        "        out[None] += ds.sin(h[h.shape[0] - 1, i, j]) + 0.5 * h[h.shape[0] - 1, i, j] ** 2 + acc[None]"
        "\n\n\n@ds.kernel\ndef loss3"), 1)
    d = tmp_path_factory.getbasetemp() / "gather_fresh"
    d.mkdir(exist_ok=True)
    _gen[0] += 1
    m = load_kernels(d, src, f"_gather_fresh_{_gen[0]}")
    h0 = np.random.default_rng(seed).standard_normal(shape)

    def grads(threshold):
        old, arr.LAZY_ZERO = arr.LAZY_ZERO, threshold
        rng = np.random.default_rng(seed + 1)
        try:
            h = ds.array(h0, requires_grad=True)
            acc, out = ds.zeros((), requires_grad=True), ds.zeros((), requires_grad=True)
            res = []
            for _ in range(2):
                h.numpy()[...] = h0
                h.grad.numpy()[...] = rng.standard_normal(shape)
                for a in (h, acc, out):
                    a.zero_grad()
                acc.fill(0.0)
                out.fill(0.0)
                with ds.Tape() as tape:
                    m.sim(h, acc, out)
                tape.backward(out)
                res.append(h.grad.numpy().copy())
            return res
        finally:
            arr.LAZY_ZERO = old

    with using("python"):
        want, got = grads(1 << 62), grads(1)
    try:
        for w, g in zip(want, got):
            np.testing.assert_array_equal(g, w)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- kernel ---\n{src}\nshape {shape}") from None
    _fresh_used.append(bool(m.sim._last._fresh))


_fresh_used: list = []


def test_random_lazily_zeroed_cases_used_the_variant():
    """Not vacuous: most of the random cases above ran the variant that zeroes at first touch."""
    if not _fresh_used:
        pytest.skip("runs after test_random_time_loop_stencils_lazily_zeroed_gradient")
    assert sum(_fresh_used) >= len(_fresh_used) // 2, _fresh_used
