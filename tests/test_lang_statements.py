"""Every statement form of API.md §3, each against a plain Python/NumPy reference.

Most cases run on the Python backend (``py``); a representative subset runs
on both backends (``backend``) so the numba CPU backend is held to the oracle.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import difsci
import difsci as ds

from conftest import assert_close

N = 16
SCALE = 3.0                       # a module-level constant, read at compile time
OFFSETS = (1.0, 2.0, 4.0)         # a tuple of numbers, usable by ds.static
NP_SCALE = np.float32(0.5)        # a numpy scalar keeps its type


def rng(seed=0):
    return np.random.default_rng(seed)


# ============================================================ assignments
@ds.kernel
def k_assign(x: ds.f64[:], out: ds.f64[:, :]):
    for i in range(x.shape[0]):
        a = x[i]
        b = a * 2.0
        a, b = b, a                      # swap: both sides evaluated first
        c = d = a + b                    # chained assignment
        p, (q, r) = 1.0, (2.0, 3.0)      # nested tuple unpacking
        out[i, 0] = a
        out[i, 1] = b
        out[i, 2] = c + d
        out[i, 3] = p + 10.0 * q + 100.0 * r


def test_assignment_and_unpacking(backend):
    x = rng().standard_normal(N)
    out = ds.zeros((N, 4))
    k_assign(x, out)
    want = np.stack([2 * x, x, 6 * x, np.full(N, 321.0)], axis=1)
    assert_close(out.numpy(), want)


@ds.func
def divmod_f(a: float, b: float):
    return a // b, a % b


@ds.kernel
def k_unpack_func(x: ds.f64[:], out: ds.f64[:, :]):
    for i in range(x.shape[0]):
        q, r = divmod_f(x[i], 0.75)
        v = ds.vec3(x[i], 2.0 * x[i], 3.0)
        e0, e1, e2 = v
        out[i, 0] = q
        out[i, 1] = r
        out[i, 2] = e0 + e1 + e2


def test_unpack_func_tuple_and_vector(py):
    x = rng(1).uniform(-5, 5, N)
    out = ds.zeros((N, 3))
    k_unpack_func(x, out)
    assert_close(out.numpy()[:, 0], x // 0.75)
    assert_close(out.numpy()[:, 1], x % 0.75)
    assert_close(out.numpy()[:, 2], 3 * x + 3)


@ds.kernel
def k_augassign(x: ds.f64[:], out: ds.f64[:, :]):
    for i in range(x.shape[0]):
        s = x[i]
        s += 1.5
        s -= 0.25
        s *= 3.0
        s /= 2.0
        t = s
        t //= 0.7
        u = s
        u %= 0.7
        w = s
        w **= 2
        out[i, 0] = s
        out[i, 1] = t
        out[i, 2] = u
        out[i, 3] = w


def test_augmented_assignment_locals(backend):
    x = rng(2).uniform(-3, 3, N)
    out = ds.zeros((N, 4))
    k_augassign(x, out)
    s = (x + 1.5 - 0.25) * 3.0 / 2.0
    assert_close(out.numpy(), np.stack([s, s // 0.7, s % 0.7, s ** 2], axis=1))


@ds.kernel
def k_aug_elements(x: ds.f64[:], a: ds.f64[:], m: ds.i32[:]):
    for i in range(x.shape[0]):
        a[i] += x[i]
        a[i] -= 0.5
        a[i] *= 2.0
        a[i] /= 4.0
        m[i] += 3
        m[i] *= 2
        m[i] //= 4
        m[i] %= 5


def test_augmented_assignment_elements(py):
    x = rng(3).standard_normal(N)
    a0 = rng(4).standard_normal(N)
    a = ds.array(a0)
    m = ds.array(np.arange(N, dtype=np.int32) - 5)
    k_aug_elements(x, a, m)
    assert_close(a.numpy(), (a0 + x - 0.5) * 2.0 / 4.0)
    mm = np.arange(N) - 5
    assert_close(m.numpy(), ((mm + 3) * 2 // 4) % 5)
    assert m.numpy().dtype == np.int32


@ds.kernel
def k_vec_components(p: ds.vec3[:], out: ds.vec3[:]):
    for i in range(p.shape[0]):
        v = p[i]
        v.x = v.x + 1.0
        v[2] = 7.0
        v.y *= 2.0
        out[i] = v


def test_component_assignment(py):
    p0 = rng(5).standard_normal((N, 3))
    p = ds.array(p0, dtype=ds.vec3)
    out = ds.zeros(N, dtype=ds.vec3)
    k_vec_components(p, out)
    want = p0.copy()
    want[:, 0] += 1
    want[:, 1] *= 2
    want[:, 2] = 7
    assert_close(out.numpy(), want)


@ds.kernel
def k_annassign(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        k: int = 3
        y: float = x[i] * k
        out[i] = y


def test_annotated_assignment(py):
    x = rng(6).standard_normal(N)
    out = ds.zeros(N)
    k_annassign(x, out)
    assert_close(out.numpy(), 3 * x)


# ============================================================ control flow
@ds.kernel
def k_if(x: ds.f64[:], out: ds.f64[:]):
    """A docstring is allowed and ignored."""
    for i in range(x.shape[0]):
        if x[i] < -1.0:
            out[i] = -1.0
        elif x[i] < 0.0:
            out[i] = x[i] * x[i]
        elif x[i] < 1.0 and not x[i] == 0.5:
            pass
        else:
            out[i] = 1.0 if x[i] > 2.0 else 2.0


def test_if_elif_else(backend):
    x = np.array([-2.0, -0.5, 0.0, 0.25, 0.5, 1.5, 3.0, -1.0])
    out = ds.full(x.size, 9.0)
    k_if(x, out)
    want = []
    for v in x:
        if v < -1:
            want.append(-1.0)
        elif v < 0:
            want.append(v * v)
        elif v < 1 and not v == 0.5:
            want.append(9.0)
        else:
            want.append(1.0 if v > 2 else 2.0)
    assert_close(out.numpy(), want)


@ds.kernel
def k_loops(x: ds.f64[:], out: ds.f64[:, :], n: int):
    for i in range(x.shape[0]):
        s = 0.0
        for j in range(n):               # range(stop)
            s += x[i] * j
        t = 0.0
        for j in range(2, n):            # range(start, stop)
            t += j
        u = 0.0
        for j in range(1, n, 1):         # explicit unit step
            u += 1.0
        w = 0.0
        for j in range(n, 2):            # empty range
            w += 1.0
        out[i, 0] = s
        out[i, 1] = t
        out[i, 2] = u
        out[i, 3] = w


def test_for_range_forms(py):
    x = rng(7).standard_normal(N)
    out = ds.zeros((N, 4))
    n = 6
    k_loops(x, out, n)
    want = np.stack([x * sum(range(n)), np.full(N, sum(range(2, n))), np.full(N, n - 1.0), np.zeros(N)], axis=1)
    assert_close(out.numpy(), want)


@ds.kernel
def k_ndrange1(out: ds.f64[:]):
    for (i,) in ds.ndrange((2, out.shape[0] - 1)):
        out[i] = i * 1.0


@ds.kernel
def k_ndrange2(out: ds.f64[:, :]):
    for i, j in ds.ndrange((1, out.shape[0] - 1), out.shape[1]):
        out[i, j] = 10.0 * i + j


@ds.kernel
def k_ndrange3(out: ds.i64[:, :, :]):
    for i, j, k in ds.ndrange(out.shape[0], (1, out.shape[1]), (0, out.shape[2] - 1)):
        out[i, j, k] = 100 * i + 10 * j + k


def _ref_ndrange(shape, ranges, f):
    want = np.zeros(shape)
    import itertools
    for idx in itertools.product(*[range(*r) for r in ranges]):
        want[idx] = f(*idx)
    return want


@ds.kernel
def k_range_forms(out: ds.f64[:, :]):
    for i in range(1, out.shape[0] - 1):          # a parallel loop with a start
        out[i, 0] = i * 1.0
    for i in ds.ndrange(out.shape[0]):            # one range, one plain name
        out[i, 1] = -1.0 * i


def test_ndrange_1d(py):
    out = ds.zeros(8)
    k_ndrange1(out)
    assert_close(out.numpy(), _ref_ndrange((8,), [(2, 7)], float))
    out2 = ds.zeros((6, 2))
    assert k_range_forms(out2) is None                # a launch returns None
    assert_close(out2.numpy()[:, 0], [0, 1, 2, 3, 4, 0])
    assert_close(out2.numpy()[:, 1], -np.arange(6.0))


def test_ndrange_2d_3d(backend):
    out = ds.zeros((5, 4))
    k_ndrange2(out)
    assert_close(out.numpy(), _ref_ndrange((5, 4), [(1, 4), (0, 4)], lambda i, j: 10 * i + j))
    out3 = ds.zeros((3, 4, 5), dtype=np.int64)
    k_ndrange3(out3)
    assert_close(out3.numpy(), _ref_ndrange((3, 4, 5), [(0, 3), (1, 4), (0, 4)],
                                            lambda i, j, k: 100 * i + 10 * j + k).astype(np.int64))


@ds.kernel
def k_inner_ndrange(x: ds.f64[:, :], out: ds.f64[:]):
    for t in range(out.shape[0]):
        s = 0.0
        for i, j in ds.ndrange(x.shape[0], (1, x.shape[1])):   # serial: nested in a loop
            s += x[i, j] * (t + 1)
        out[t] = s


def test_inner_ndrange_is_serial(py):
    x = rng(8).standard_normal((4, 5))
    out = ds.zeros(3)
    k_inner_ndrange(x, out)
    assert_close(out.numpy(), x[:, 1:].sum() * np.arange(1, 4))


@ds.kernel
def k_static(x: ds.f64[:], out: ds.f64[:, :]):
    for i in range(x.shape[0]):
        for k in ds.static(range(3)):
            out[i, k] = x[i] * OFFSETS[k]
        s = 0.0
        for c in ds.static(OFFSETS):
            s += c * x[i]
        out[i, 3] = s


def test_static_unrolled(backend):
    x = rng(9).standard_normal(N)
    out = ds.zeros((N, 4))
    k_static(x, out)
    want = np.stack([x * 1, x * 2, x * 4, 7 * x], axis=1)
    assert_close(out.numpy(), want)
    assert "for k in" not in k_static.source and "for c in" not in k_static.source


@ds.kernel
def k_while(x: ds.i64[:], steps: ds.i64[:]):
    """Collatz step counts: a while loop with a data-dependent trip count."""
    for i in range(x.shape[0]):
        v = x[i]
        n = 0
        while v != 1 and n < 1000:
            if v % 2 == 0:
                v = v // 2
            else:
                v = 3 * v + 1
            n += 1
        steps[i] = n


def _collatz(v):
    n = 0
    while v != 1:
        v = v // 2 if v % 2 == 0 else 3 * v + 1
        n += 1
    return n


def test_while(backend):
    x = np.arange(1, 40, dtype=np.int64)
    steps = ds.zeros(x.size, dtype=np.int64)
    k_while(x, steps)
    assert_close(steps.numpy(), np.array([_collatz(int(v)) for v in x]))


@ds.kernel
def k_break_continue(x: ds.f64[:, :], out: ds.f64[:, :]):
    for i in range(x.shape[0]):
        s = 0.0
        first = -1
        for j in range(x.shape[1]):
            if x[i, j] < 0.0:
                continue                # skip negatives
            s += x[i, j]
            if s > 2.0:
                first = j
                break
        k = 0
        while True:
            k += 1
            if k >= 5:
                break
        out[i, 0] = s
        out[i, 1] = first
        out[i, 2] = k


def test_break_continue(backend):
    x = rng(10).standard_normal((N, 8))
    out = ds.zeros((N, 3))
    k_break_continue(x, out)
    for i in range(N):
        s, first = 0.0, -1
        for j in range(8):
            if x[i, j] < 0:
                continue
            s += x[i, j]
            if s > 2:
                first = j
                break
        assert_close(out.numpy()[i], [s, first, 5.0])


# ============================================================ kernel structure
@ds.kernel
def k_toplevel(x: ds.f64[:], out: ds.f64[:], total: ds.f64[()]):
    n = x.shape[0]
    h = 1.0 / (n - 1)
    total[None] = 0.0
    for i in range(n):
        out[i] = x[i] * h
    for i in range(n):                    # runs after the first loop has finished
        total[None] += out[i]
    total[()] = total[()] * 2.0           # once, after both loops


def test_top_level_statements_and_loop_order(backend):
    x = rng(11).standard_normal(N)
    out = ds.zeros(N)
    total = ds.zeros(())
    k_toplevel(x, out, total)
    h = 1.0 / (N - 1)
    assert_close(out.numpy(), x * h)
    assert_close(total.numpy(), 2 * (x * h).sum(), rtol=1e-12, atol=1e-12)


@ds.kernel
def k_serial(x: ds.f64[:, :], v: ds.f64[:, :], dt: float, energy: ds.f64[:]):
    n = x.shape[1]
    for t in ds.serial(range(x.shape[0] - 1)):
        for i in range(n):
            v[t + 1, i] = v[t, i] - dt * x[t, i]
        for i in range(n):
            x[t + 1, i] = x[t, i] + dt * v[t + 1, i]
        for i in range(n):
            energy[t + 1] += 0.5 * (x[t + 1, i] ** 2 + v[t + 1, i] ** 2)


def test_serial_time_loop(backend):
    T, n, dt = 20, 8, 0.05
    x0 = rng(12).standard_normal(n)
    x = ds.zeros((T, n))
    v = ds.zeros((T, n))
    x.numpy()[0] = x0
    e = ds.zeros(T)
    k_serial(x, v, dt, e)
    xr, vr, er = np.zeros((T, n)), np.zeros((T, n)), np.zeros(T)
    xr[0] = x0
    for t in range(T - 1):
        vr[t + 1] = vr[t] - dt * xr[t]
        xr[t + 1] = xr[t] + dt * vr[t + 1]
        er[t + 1] = 0.5 * (xr[t + 1] ** 2 + vr[t + 1] ** 2).sum()
    assert_close(x.numpy(), xr)
    assert_close(v.numpy(), vr)
    assert_close(e.numpy(), er, rtol=1e-12)


# ============================================================ names, closures
@ds.kernel
def k_globals(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = SCALE * x[i] + math.pi + NP_SCALE + difsci.sqrt(4.0) - 2.0


def test_module_constants_read_at_compile_time(py):
    global SCALE
    x = rng(13).standard_normal(N)
    out = ds.zeros(N)
    k_globals(x, out)
    assert_close(out.numpy(), 3.0 * x + math.pi + 0.5)
    old = SCALE
    try:
        SCALE = 100.0                      # rebinding after compilation has no effect
        k_globals(x, out)
        assert_close(out.numpy(), 3.0 * x + math.pi + 0.5)
    finally:
        SCALE = old


def make_scaler(factor, power):
    @ds.func
    def scale(v):
        return factor * v ** power

    @ds.kernel
    def apply(x: ds.f64[:], out: ds.f64[:]):
        for i in range(x.shape[0]):
            out[i] = scale(x[i]) + factor
    return apply, scale


def test_closures_and_nested_definitions(py):
    x = rng(14).standard_normal(N)
    k2, f2 = make_scaler(2.0, 2)
    k3, f3 = make_scaler(-1.5, 3)
    out2, out3 = ds.zeros(N), ds.zeros(N)
    k2(x, out2)
    k3(x, out3)
    assert_close(out2.numpy(), 2.0 * x ** 2 + 2.0)
    assert_close(out3.numpy(), -1.5 * x ** 3 - 1.5)
    assert_close(f3(2.0), -12.0)


def test_closure_rebinding_has_no_effect(py):
    factor = 2.0

    @ds.kernel
    def k(x: ds.f64[:], out: ds.f64[:]):
        for i in range(x.shape[0]):
            out[i] = factor * x[i]

    x = np.arange(4.0)
    out = ds.zeros(4)
    k(x, out)
    factor = 5.0                           # noqa: F841 - compiled already
    k(x, out)
    assert_close(out.numpy(), 2.0 * x)


# ============================================================ generated names
@ds.func
def twice(v):
    y = v * 2.0
    return y


@ds.kernel
def k_name_clashes(p: ds.vec2, out: ds.f64[:, :]):
    for i in range(out.shape[0]):
        p_0 = 100.0                       # the name a component of `p` would get
        d = ds.vec2(1.0, 2.0)
        d_1 = 50.0
        twice_v = 7.0                     # the name twice's parameter would get inlined
        twice_y_0 = -1.0
        out[i, 0] = p.x + p_0
        out[i, 1] = d.y + d_1
        out[i, 2] = twice(1.0) + twice_v + twice_y_0


def test_generated_names_never_capture_user_names(backend):
    out = ds.zeros((2, 3))
    k_name_clashes(np.array([1.0, 2.0]), out)
    assert_close(out.numpy(), [[101.0, 52.0, 8.0]] * 2)


# ============================================================ funcs
@ds.func
def smoothstep(e0: float, e1: float, v: float) -> float:
    t = ds.clamp((v - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@ds.func
def piecewise(v):
    """Several early returns, one inside a loop."""
    if v < 0.0:
        return -1.0
    for k in range(10):
        if v < k:
            return k * 1.0
    if v > 100.0:
        return 100.0
    return v


def piecewise_ref(v):
    if v < 0:
        return -1.0
    for k in range(10):
        if v < k:
            return float(k)
    return 100.0 if v > 100 else v


@ds.kernel
def k_funcs(x: ds.f64[:], out: ds.f64[:, :]):
    for i in range(x.shape[0]):
        out[i, 0] = smoothstep(-1.0, 2.0, x[i])
        out[i, 1] = piecewise(x[i])
        out[i, 2] = piecewise(2.0 * x[i]) + piecewise(x[i] - 1.0)


def smooth_ref(v):
    t = min(max((v + 1) / 3, 0.0), 1.0)
    return t * t * (3 - 2 * t)


def test_funcs_in_kernels_and_early_returns(backend):
    x = np.array([-3.0, -0.5, 0.0, 0.3, 2.5, 4.0, 9.5, 150.0, 60.0])
    out = ds.zeros((x.size, 3))
    k_funcs(x, out)
    want = [[smooth_ref(v), piecewise_ref(v), piecewise_ref(2 * v) + piecewise_ref(v - 1)] for v in x]
    assert_close(out.numpy(), want)
    src = k_funcs.source
    assert "smoothstep_t" in src and "smoothstep2_" not in src      # user names survive, one prefix per call
    assert "piecewise2_" in src and "piecewise3_" in src


def test_funcs_called_from_python(backend):
    for v in (-3.0, 0.2, 3.7, 150.0, 50.0):
        assert_close(piecewise(v), piecewise_ref(v))
        assert_close(smoothstep(-1.0, 2.0, v), smooth_ref(v))
    q, r = divmod_f(7.5, 2.0)
    assert (q, r) == (3.0, 1.5)


@ds.func
def relu_int_first(v):
    if v < 0.0:
        return 0                 # an int here, a float below: the result is a float
    return v


@ds.func
def find_first(x: ds.f64[:], v: float):
    """Early returns of tuples from a while loop."""
    k = 0
    while k < x.shape[0]:
        if x[k] >= v:
            return k, x[k]
        k += 1
    return -1, 0.0


@ds.func
def first_pair(n: int):
    for a in range(n):
        for b in range(n):
            if a * b > 6:
                return ds.vec2(a * 1.0, b * 1.0)
    return ds.vec2(-1.0, -1.0)


@ds.func
def skip_thirds(n):
    s = 0
    k = 0
    while k < n:
        k += 1
        if k % 3 == 0:
            continue
        s += k
    return s


@ds.kernel
def k_control_funcs(x: ds.f64[:], out: ds.f64[:, :]):
    for i in range(out.shape[0]):
        j, val = find_first(x, i * 0.5)
        out[i, 0] = j
        out[i, 1] = val
        w = first_pair(i)
        out[i, 2] = w.x
        out[i, 3] = w.y
        out[i, 4] = skip_thirds(i + 2)
        out[i, 5] = relu_int_first(x[i % 5] - 1.0)


def test_func_control_flow(backend):
    x = np.array([0.1, 0.7, 1.2, 2.5, 3.0])
    out = ds.zeros((7, 6))
    k_control_funcs(x, out)

    def find_ref(v):
        return next(((k, x[k]) for k in range(5) if x[k] >= v), (-1, 0.0))

    def pair_ref(n):
        return next(((a, b) for a in range(n) for b in range(n) if a * b > 6), (-1, -1))

    want = [[*find_ref(i * 0.5), *pair_ref(i), sum(k for k in range(1, i + 3) if k % 3), max(x[i % 5] - 1.0, 0.0)]
            for i in range(7)]
    assert_close(out.numpy(), want)
    assert relu_int_first(0.5) == 0.5 and relu_int_first(-2.0) == 0.0


@ds.func
def deposit(grid: ds.f64[:], pos: float, w: float):
    """A func taking an array: splats ``w`` onto the two nearest cells (atomic)."""
    c = int(ds.floor(pos))
    f = pos - c
    grid[c] += w * (1.0 - f)
    grid[c + 1] += w * f
    return f


@ds.func
def write_pair(out: ds.f64[:, :], i: int, a: float, b: float):
    out[i, 0] = a
    out[i, 1] = b
    return a + b


@ds.kernel
def k_array_funcs(pos: ds.f64[:], w: ds.f64[:], grid: ds.f64[:], out: ds.f64[:, :], s: ds.f64[:]):
    for i in range(pos.shape[0]):
        fr = deposit(grid, pos[i], w[i])
        s[i] = write_pair(out, i, fr, 2.0 * fr)


def test_funcs_with_arrays(backend):
    r = rng(15)
    n = 400
    pos = r.uniform(0, 6.99, n)
    w = np.round(r.uniform(0, 4, n) * 8) / 8     # exactly representable weights
    grid, out, s = ds.zeros(8), ds.zeros((n, 2)), ds.zeros(n)
    k_array_funcs(pos, w, grid, out, s)
    c = np.floor(pos).astype(int)
    f = pos - c
    want = np.zeros(8)
    np.add.at(want, c, w * (1 - f))
    np.add.at(want, c + 1, w * f)
    assert_close(grid.numpy(), want, rtol=1e-10, atol=1e-10)
    assert_close(out.numpy(), np.stack([f, 2 * f], axis=1))
    assert_close(s.numpy(), 3 * f)


def test_func_with_array_rejects_python_call(py):
    with pytest.raises(TypeError):
        deposit(np.zeros(4), 1.5, 1.0)


@ds.kernel
def k_generic(x, out):
    for i in range(x.shape[0]):
        out[i] = x[i] * 2 + 1


def test_respecialisation_on_new_types(backend):
    xf = np.arange(5, dtype=np.float32)
    of = np.zeros(5, np.float32)
    k_generic(xf, of)
    assert_close(of, 2 * xf + 1, np.float32)
    xi = np.arange(5, dtype=np.int64)
    oi = np.zeros(5, np.int64)
    k_generic(xi, oi)
    assert_close(oi, 2 * xi + 1)
    xd = ds.array(np.linspace(0, 1, 7))
    od = ds.zeros(7)
    k_generic(xd, od)
    assert_close(od.numpy(), 2 * xd.numpy() + 1)
    assert len(k_generic._specs) == 3


@ds.func
def poly(v):
    return v * v - 2 * v


def test_func_respecialises_from_python(py):
    assert poly(3) == 3 and isinstance(poly(3), (int, np.integer))
    assert_close(poly(0.5), -0.75)
    assert_close(poly(np.array([1.0, 2.0])), [-1.0, 0.0])


# ============================================================ casts, typing
@ds.kernel
def k_casts(x: ds.f64[:], out32: ds.f32[:], outi: ds.i64[:], outf: ds.f64[:]):
    for i in range(x.shape[0]):
        out32[i] = ds.f32(x[i]) * ds.f32(3.0)
        outi[i] = int(x[i]) + ds.i64(ds.i32(x[i]))
        outf[i] = float(int(x[i])) + ds.f64(ds.f32(0.1))


def test_casts(backend):
    x = np.array([-2.7, -0.5, 0.0, 0.5, 1.9, 3.5, 1e3 + 0.7])
    o32, oi, of = ds.zeros(x.size, dtype=np.float32), ds.zeros(x.size, dtype=np.int64), ds.zeros(x.size)
    k_casts(x, o32, oi, of)
    assert_close(o32.numpy(), x.astype(np.float32) * np.float32(3), np.float32)
    assert_close(oi.numpy(), 2 * np.trunc(x).astype(np.int64))
    assert_close(of.numpy(), np.trunc(x) + float(np.float32(0.1)))


@ds.kernel
def k_weak(x: ds.f32[:], out: ds.f32[:], d: ds.f64[:], c: float):
    for i in range(x.shape[0]):
        y = 2.0 * x[i]                # weak literal: stays f32
        z = c * x[i] + 1              # weak float argument: stays f32
        s = 0                         # s = 0 then s = s + 0.5 makes s a float
        for j in range(3):
            s = s + 0.5
        out[i] = y + z + s
        d[i] = ds.f64(x[i]) * 0.1     # explicit f64


def test_weak_typing_nep50(backend):
    x = np.linspace(-1, 1, N).astype(np.float32)
    out = ds.zeros(N, dtype=np.float32)
    d = ds.zeros(N)
    k_weak(x, out, d, 0.1)
    f = np.float32
    y = f(2.0) * x
    z = f(0.1) * x + f(1)
    assert_close(out.numpy(), y + z + f(1.5), np.float32, rtol=1e-7, atol=1e-7)
    assert_close(d.numpy(), x.astype(np.float64) * 0.1)
    fn = k_weak.ir(x, out, d, 0.1)
    assert fn.locals["y"] == ds.f32 and fn.locals["z"] == ds.f32
    assert fn.locals["s"].is_float


@ds.kernel
def k_floatmod(x: ds.f64[:], y: ds.f64[:], out: ds.f64[:, :], xi: ds.i64[:], outi: ds.i64[:, :]):
    for i in range(x.shape[0]):
        out[i, 0] = x[i] % y[i]
        out[i, 1] = x[i] // y[i]
        out[i, 2] = x[i] % 3
        out[i, 3] = -x[i] // 2
        outi[i, 0] = xi[i] % 3
        outi[i, 1] = xi[i] // -3


def test_float_mod_floordiv_python_semantics(backend):
    x = np.array([7.5, -7.5, 7.5, -7.5, 0.0, 1e-3, -1e-3, 5.0])
    y = np.array([2.0, 2.0, -2.0, -2.0, 3.0, 1.0, 1.0, 2.5])
    xi = np.array([7, -7, 0, 5, -1, 2, -9, 3], dtype=np.int64)
    out, outi = ds.zeros((x.size, 4)), ds.zeros((x.size, 2), dtype=np.int64)
    k_floatmod(x, y, out, xi, outi)
    want = [[a % b, a // b, a % 3, -a // 2] for a, b in zip(x, y)]
    assert_close(out.numpy(), want)
    assert_close(outi.numpy(), np.array([[int(a) % 3, int(a) // -3] for a in xi]))


@ds.kernel
def k_zero_d(a: ds.f64[()], b: ds.f64[()], x: ds.f64[:]):
    b[None] = a[()] * 2.0
    for i in range(x.shape[0]):
        b[()] += x[i]
    a[None] = -1.0


def test_zero_d_arrays(backend):
    a = ds.array(np.array(1.5))
    b = ds.zeros(())
    x = np.arange(5.0)
    k_zero_d(a, b, x)
    assert a.shape == () and b.shape == ()
    assert_close(b.numpy(), 3.0 + 10.0)
    assert_close(a.numpy(), -1.0)


# ============================================================ random numbers
@ds.kernel
def k_rand(seed: int, u: ds.f64[:], g: ds.f64[:], u2: ds.f64[:, :]):
    for i in range(u.shape[0]):
        u[i] = ds.randu(seed, i)
        g[i] = ds.randn(seed, i)
        u2[i, 0] = ds.randu(seed, i, 1)
        u2[i, 1] = ds.randu(seed, i, 2, 3)


def _draw(seed, n=4000):
    u, g, u2 = ds.zeros(n), ds.zeros(n), ds.zeros((n, 2))
    k_rand(seed, u, g, u2)
    return u.numpy().copy(), g.numpy().copy(), u2.numpy().copy()


def test_random_deterministic_and_same_on_backends():
    try:
        ds.init(backend="python")
        ref = _draw(7)
        ds.init(backend="cpu")
        got = _draw(7)
        again = _draw(7)
        other = _draw(8)
    finally:
        ds.init(backend="cpu")
    for a, b, c in zip(ref, got, again):
        np.testing.assert_array_equal(a, b)      # same bits on both backends
        np.testing.assert_array_equal(b, c)      # stateless: same every launch
    assert not np.array_equal(ref[0], other[0])
    assert not np.array_equal(ref[0], ref[2][:, 0])   # more keys, other numbers


def test_random_distributions(py):
    u, g, u2 = _draw(3)
    assert u.min() >= 0.0 and u.max() < 1.0
    for sample in (u, u2[:, 0], u2[:, 1]):
        assert abs(sample.mean() - 0.5) < 0.02
        assert abs(sample.var() - 1 / 12) < 0.01
        hist = np.histogram(sample, bins=10, range=(0, 1))[0]
        assert hist.min() > 300 and hist.max() < 500
    assert abs(g.mean()) < 0.06 and abs(g.std() - 1.0) < 0.05
    assert abs((np.abs(g) < 1).mean() - 0.6827) < 0.03
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.05


# ============================================================ bool and logic
@ds.kernel
def k_logic(x: ds.f64[:], flag: bool, out: ds.i64[:]):
    for i in range(x.shape[0]):
        a = x[i] > 0.0
        b = x[i] < 0.5 or x[i] > 2.0
        c = not (a and b) or (flag and x[i] == 3.0)
        out[i] = 1 if c else 0
        if -1.0 < x[i] <= 1.0:
            out[i] += 10
        out[i] += 100 * -(x[i] > 2.0) + 1000 * (x[i] < 0.0)     # bools are 0/1 in arithmetic


def test_bool_logic_and_chained_comparisons(py):
    x = np.array([-2.0, -1.0, 0.0, 0.25, 1.0, 1.5, 2.5, 3.0])
    for flag in (False, True):
        out = ds.zeros(x.size, dtype=np.int64)
        k_logic(x, flag, out)
        want = [(1 if (not (v > 0 and (v < 0.5 or v > 2)) or (flag and v == 3.0)) else 0)
                + (10 if -1 < v <= 1 else 0) + 100 * -bool(v > 2) + 1000 * bool(v < 0) for v in x]
        assert_close(out.numpy(), np.array(want))


# ============================================================ atomics
@ds.kernel
def k_scatter(idx, val, add, sub, lo, hi, add2):
    for i in range(idx.shape[0]):
        add[idx[i]] += val[i]
        sub[idx[i]] -= val[i]
        ds.atomic_min(lo, idx[i], val[i])
        ds.atomic_max(hi, idx[i], val[i])
        ds.atomic_add(add2, idx[i], 2 * val[i])


@ds.kernel
def k_scatter2(rows: ds.i64[:], cols: ds.i64[:], val: ds.f64[:], h: ds.f64[:, :], total: ds.f64[()],
               p: ds.vec2[:], cnt: ds.i32[()]):
    for i in range(rows.shape[0]):
        h[rows[i], cols[i]] += val[i]
        total[None] += val[i]
        p[cols[i]] += ds.vec2(val[i], 1.0)
        cnt[None] += 1


NBINS = 16


def _quarter_values(r, dtype, n):
    # multiples of 1/4 in [-16, 16]: every partial sum is exact, so one lost update shows
    return (r.integers(-64, 65, n) / 4).astype(dtype) if np.dtype(dtype).kind == "f" else \
        r.integers(-1000, 1000, n).astype(dtype)


# the runtime atomics of every dtype are tested in test_atomics.py; here, that the language lowers
# `+=`, `-=` and ds.atomic_* in a parallel loop to them (an int and a float type, each a numba compile)
@pytest.mark.parametrize("dtype", [np.int64, np.float32], ids=lambda d: d.__name__)
def test_atomics_under_contention(dtype, cpu):
    n = 200_000
    r = rng(20)
    idx = r.integers(0, NBINS, n)
    val = _quarter_values(r, dtype, n)
    info = np.iinfo(dtype) if np.dtype(dtype).kind == "i" else np.finfo(dtype)
    add, sub, add2 = (np.zeros(NBINS, dtype) for _ in range(3))
    lo, hi = np.full(NBINS, info.max, dtype), np.full(NBINS, info.min, dtype)
    k_scatter(idx, val, add, sub, lo, hi, add2)
    ref = [np.zeros(NBINS, dtype) for _ in range(3)]
    rlo, rhi = np.full(NBINS, info.max, dtype), np.full(NBINS, info.min, dtype)
    np.add.at(ref[0], idx, val)
    np.subtract.at(ref[1], idx, val)
    np.add.at(ref[2], idx, 2 * val)
    np.minimum.at(rlo, idx, val)
    np.maximum.at(rhi, idx, val)
    for got, want in zip((add, sub, add2, lo, hi), (*ref, rlo, rhi)):
        np.testing.assert_array_equal(got, want)
    assert "atomic_add(" in k_scatter.source


def test_atomics_match_python_backend():
    r = rng(21)
    n = 3000
    rows, cols = r.integers(0, 3, n), r.integers(0, 4, n)
    val = r.standard_normal(n)
    outs = {}
    try:
        for b in ("python", "cpu"):
            ds.init(backend=b)
            h, total = ds.zeros((3, 4)), ds.zeros(())
            p, cnt = ds.zeros(4, dtype=ds.vec2), ds.zeros((), dtype=np.int32)
            k_scatter2(rows, cols, val, h, total, p, cnt)
            outs[b] = (h.numpy(), total.numpy(), p.numpy(), cnt.numpy())
    finally:
        ds.init(backend="cpu")
    H = np.zeros((3, 4))
    np.add.at(H, (rows, cols), val)
    P = np.zeros((4, 2))
    np.add.at(P, cols, np.stack([val, np.ones(n)], axis=1))
    for h, total, p, cnt in outs.values():
        assert_close(h, H, rtol=1e-10, atol=1e-10)            # float sums: to rounding
        assert_close(total, val.sum(), rtol=1e-10, atol=1e-10)
        assert_close(p, P, rtol=1e-10, atol=1e-10)
        assert int(cnt) == n                                  # ints: exact
