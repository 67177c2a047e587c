"""Reverse mode of kernels through ds.Tape against float64 central finite
differences along random directions, one test per kernel construct
(API.md §3-§4).  Most run on the plain-Python backend (the oracle); a
representative subset runs on numba ``cpu`` too."""
from __future__ import annotations

import math

import numpy as np
import pytest

import difsci as ds

from gradcheck import backend_all, fd_full, py_backend, tape_check, tape_grads, taylor_rates, using  # noqa: F401

RNG = np.random.default_rng(1234)


def rnd(*shape, lo=-1.0, hi=1.0):
    return RNG.uniform(lo, hi, size=shape)


# ------------------------------------------------------------------ losses
@ds.kernel
def loss1(y: ds.f64[:], out: ds.f64[()]):
    for i in range(y.shape[0]):
        out[None] += ds.sin(y[i]) * (1.0 + 0.1 * i) + 0.5 * y[i] * y[i]


@ds.kernel
def loss2(y: ds.f64[:, :], out: ds.f64[()]):
    for i, j in ds.ndrange(y.shape[0], y.shape[1]):
        out[None] += ds.cos(y[i, j] + 0.1 * j) * (1.0 + 0.1 * i)


def L1(y):
    out = ds.zeros((), requires_grad=True)
    loss1(y, out)
    return out


def L2(y):
    out = ds.zeros((), requires_grad=True)
    loss2(y, out)
    return out


# ------------------------------------------------------------ straight line
@ds.kernel
def straight(x: ds.f64[:], w: ds.f64[:], y: ds.f64[:], a: float):
    for i in range(x.shape[0]):
        u = ds.sin(x[i]) * a + x[i] * w[i]
        v = u * u - ds.exp(w[i] * 0.5) / (1.0 + x[i] * x[i])
        u = v * 2.0 + u      # a local overwritten in straight-line code
        y[i] = u + ds.sqrt(v * v + 1.0)


def test_straight_line(backend_all):
    def build(x, w):
        y = ds.zeros(x.shape, requires_grad=True)
        straight(x, w, y, 0.7)
        return L1(y)
    tape_check(build, {"x": rnd(6), "w": rnd(6)})


# ------------------------------------------------------------------ branches
@ds.kernel
def branches(x: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        v = x[i]
        if v > 0.5:
            y[i] = v * v
        elif v > 0.0:
            t = ds.sin(v)
            y[i] = t * 3.0
        elif v > -0.5:
            v = v * 2.0
            y[i] = v * ds.exp(v)
        else:
            y[i] = -v
        c = v if v > 0.2 else v * v * 0.5     # conditional expression
        y[i] += c if x[i] < 0.7 else ds.cos(c)


def test_if_elif_else_and_conditional_expressions(py_backend):
    x = np.array([0.9, 0.3, -0.2, -0.8, 0.6, 0.1, -0.45, 0.75])

    def build(x):
        y = ds.zeros(x.shape, requires_grad=True)
        branches(x, y)
        return L1(y)
    g = tape_check(build, {"x": x})
    np.testing.assert_allclose(g["x"], fd_full(build, {"x": x}, "x"), rtol=1e-6, atol=1e-9)


@ds.kernel
def nested_if_in_loop(x: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        s = x[i]
        for j in range(12):
            if s > 0.3:
                s = s * 0.9 - 0.05 * j
            else:
                if s < -0.5:
                    s = s * s
                else:
                    s = s + 0.3 * ds.sin(s + j)
        y[i] = s


def test_branches_inside_loops():
    with using("python"):
        def build(x):
            y = ds.zeros(x.shape, requires_grad=True)
            nested_if_in_loop(x, y)
            return L1(y)
        tape_check(build, {"x": np.array([0.9, 0.31, -0.2, -0.8, 0.55, 0.1])})


# ------------------------------------------------- inner loops carrying locals
@ds.kernel
def horner(x: ds.f64[:], b: ds.f64[:], a: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        s = x[i]
        for j in range(b.shape[0]):
            s = s * a[0] + b[j]                  # overwrites s every iteration
        t = 0.0
        p = 1.0
        for j in range(b.shape[0]):
            p = p * (1.0 + 0.01 * ds.sin(s + b[j]))
            t = t + p * b[j]
        y[i] = s + t


def test_inner_loop_carrying_locals_many_iterations(backend_all):
    n = 45      # Taichi's adjoint breaks at >= 31 iterations of such a loop
    inputs = {"x": rnd(3), "b": rnd(n, lo=-0.2, hi=0.2), "a": np.array([0.93])}

    def build(x, b, a):
        y = ds.zeros(x.shape, requires_grad=True)
        horner(x, b, a, y)
        return L1(y)
    g = tape_check(build, inputs)
    assert np.all(g["b"] != 0) and g["a"][0] != 0


@ds.kernel
def nested_serial(x: ds.f64[:], y: ds.f64[:], n: int, m: int):
    for i in range(x.shape[0]):
        s = x[i]
        for j in range(n):
            u = s
            for k in range(m):
                u = u * 0.97 + 0.01 * ds.cos(u * k + j)
            s = 0.5 * s + 0.5 * u * x[i]
        y[i] = s


def test_nested_serial_loops(py_backend):
    def build(x):
        y = ds.zeros(x.shape, requires_grad=True)
        nested_serial(x, y, 7, 6)
        return L1(y)
    tape_check(build, {"x": rnd(4)})


@ds.kernel
def data_bounds(x: ds.f64[:], counts: ds.i32[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        s = 0.0
        for j in range(counts[i]):
            s = s * x[i] + 1.0 + j
        y[i] = s


def test_loop_with_data_dependent_trip_count(py_backend):
    counts = np.array([0, 3, 7, 1, 5], dtype=np.int32)

    def build(x):
        y = ds.zeros(x.shape, requires_grad=True)
        data_bounds(x, counts, y)
        return L1(y)
    tape_check(build, {"x": rnd(5)})


# -------------------------------------------------------------- while loops
@ds.kernel
def while_loop(x: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        s = x[i]
        k = 0
        while s < 4.0 and k < 60:
            s = s * 1.1 + 0.05 * ds.sin(s)
            k += 1
        y[i] = s / (k + 1.0)


def test_while_loop(py_backend):
    x = np.array([0.3, 1.7, 0.9, 2.5, 3.95, 5.0])

    def build(x):
        y = ds.zeros(x.shape, requires_grad=True)
        while_loop(x, y)
        return L1(y)
    tape_check(build, {"x": x})


# --------------------------------------------------------- break / continue
@ds.kernel
def jumps(x: ds.f64[:], b: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        s = x[i]
        t = 0.0
        for j in range(b.shape[0]):
            if b[j] < -0.6:
                continue
            s = s * 0.9 + b[j] * x[i]
            if s > 2.0:
                break
            t = t + s * s
        k = 0
        while True:
            k += 1
            if k > 30:
                break
            if k % 3 == 0:
                continue
            t = t * 0.95 + 0.01 * s
        y[i] = s + t


def test_break_continue(backend_all):
    b = np.array([0.5, -0.7, 0.8, 0.9, -0.9, 0.7, 0.6, 0.9, 0.95, 0.99, 0.99, 0.99])

    def build(x, b):
        y = ds.zeros(x.shape, requires_grad=True)
        jumps(x, b, y)
        return L1(y)
    tape_check(build, {"x": np.array([0.2, 1.1, 0.6, 1.9, -0.4]), "b": b})


# ----------------------------------------------------------------- ds.func
@ds.func
def smooth_step(v: float, k: float) -> float:
    if v < 0.0:
        return 0.0
    if v > 1.0:
        return 1.0 + k * (v - 1.0)
    return v * v * (3.0 - 2.0 * v)


@ds.func
def poly(v: float, coeffs: ds.f64[:]) -> float:
    s = 0.0
    for j in range(coeffs.shape[0]):
        s = s * v + coeffs[j]
        if s > 50.0:
            return s
    return s * 0.5


@ds.func
def first_above(v: float, thresh: float) -> float:
    s = v
    k = 0
    while k < 100:
        s = s * 1.2 + 0.1
        k += 1
        if s > thresh:
            return s * 2.0
    return s


@ds.kernel
def calls(x: ds.f64[:], c: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        a = smooth_step(x[i] * 1.5, c[0])
        b = poly(x[i], c)
        y[i] = a * b + first_above(x[i], 3.0) + smooth_step(b * 0.1, 0.5)


def test_func_calls_with_loops_and_early_returns(backend_all):
    x = np.array([-0.3, 0.2, 0.5, 0.9, 1.1, 2.0])

    def build(x, c):
        y = ds.zeros(x.shape, requires_grad=True)
        calls(x, c, y)
        return L1(y)
    tape_check(build, {"x": x, "c": np.array([0.8, -0.5, 0.3, 1.2, 0.1])})


@ds.func
def scatter_into(out: ds.f64[:], i: int, v: float):
    out[i] += v * v
    out[0] += v


@ds.kernel
def func_with_arrays(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        scatter_into(out, i, ds.sin(x[i]))


def test_func_writing_arrays(py_backend):
    def build(x):
        out = ds.zeros(x.shape, requires_grad=True)
        func_with_arrays(x, out)
        return L1(out)
    tape_check(build, {"x": rnd(5)})


# -------------------------------------------------------- vectors/matrices
@ds.func
def spring_force(xa: ds.vec2, xb: ds.vec2, rest: float, k: float) -> ds.vec2:
    d = xb - xa
    length = ds.norm(d)
    return k * (length - rest) * d / length


@ds.kernel
def vectors(p: ds.vec2[:], q: ds.vec3[:], y: ds.f64[:]):
    for i in range(p.shape[0]):
        a = p[i]
        b = p[(i + 1) % p.shape[0]]
        f = spring_force(a, b, 0.3, 2.0)
        u = q[i]
        w = ds.cross(u, ds.vec3(a.x, a.y, 1.0))
        n = ds.normalize(u + 0.5 * w)
        m = ds.outer(u, n)
        y[i] = ds.dot(f, a) + ds.norm(w) + n.z * ds.trace(m) + ds.cross(a, b) + (m @ u)[1]


def test_vectors(backend_all):
    def build(p, q):
        y = ds.zeros(p.shape, requires_grad=True)
        vectors(p, q, y)
        return L1(y)
    tape_check(build, {"p": rnd(5, 2), "q": rnd(5, 3)}, dtypes={"p": ds.vec2, "q": ds.vec3})


@ds.kernel
def matrices(F: ds.mat2[:], A: ds.mat3[:], y: ds.f64[:]):
    for i in range(F.shape[0]):
        M = F[i]
        Mi = ds.inverse(M)
        B3 = A[i]
        Bi = ds.inverse(B3)
        y[i] = ds.det(M) + ds.norm(Mi) + ds.det(B3) * 0.3 + (Bi @ B3.T)[0, 1] + ds.trace(ds.transpose(Mi) @ M)
        for r in range(2):
            for c in range(2):
                y[i] += M[r, c] * Mi[c, r] * 0.1 + ds.norm(Bi[r, c] * B3)


def test_matrices_inverse_det_norm(py_backend):
    F = np.eye(2) + 0.3 * rnd(4, 2, 2)
    A = np.eye(3) + 0.3 * rnd(4, 3, 3)

    def build(F, A):
        y = ds.zeros(F.shape[:1], requires_grad=True)
        matrices(F, A, y)
        return L1(y)
    tape_check(build, {"F": F, "A": A}, dtypes={"F": ds.mat2, "A": ds.mat3})


@ds.kernel
def polar_svd(F: ds.mat2[:], y: ds.f64[:]):
    for i in range(F.shape[0]):
        R, S = ds.polar_decompose2d(F[i])
        U, sig, V = ds.svd2d(F[i])
        y[i] = R[0, 1] * 2.0 + S[0, 0] * S[1, 1] + sig[0] * 0.7 - sig[1] * 1.3 + U[1, 0] * V[0, 1] + U[0, 0] + V[1, 1]


def test_polar_decompose_and_svd(py_backend):
    # singular values well apart (the svd has no derivative at repeated ones); one F with det < 0
    F = np.array([[[1.3, 0.2], [-0.1, 0.6]], [[0.5, -0.9], [0.8, 0.4]], [[1.1, 0.3], [0.4, -0.5]],
                  [[2.0, 0.5], [0.1, 0.3]]])

    def build(F):
        y = ds.zeros(F.shape[:1], requires_grad=True)
        polar_svd(F, y)
        return L1(y)
    tape_check(build, {"F": F}, dtypes={"F": ds.mat2}, rtol=1e-5)


# ---------------------------------------------------------------- atomics
@ds.kernel
def scatter(x: ds.f64[:], idx: ds.i64[:], out: ds.f64[:], total: ds.f64[()]):
    for i in range(x.shape[0]):
        v = x[i] * x[i] + ds.sin(x[i])
        out[idx[i]] += v                       # shared targets: many i hit one element
        out[(idx[i] + 1) % out.shape[0]] -= 0.5 * v
        ds.atomic_add(total, None, ds.exp(0.1 * x[i]))


@ds.kernel
def gather_after(out: ds.f64[:], total: ds.f64[()], y: ds.f64[:]):
    for j in range(out.shape[0]):
        y[j] = out[j] * total[None]


def test_atomics_shared_targets(backend_all):
    idx = np.array([0, 1, 1, 2, 0, 2, 2, 1, 0, 0], dtype=np.int64)

    def build(x):
        out = ds.zeros(3, requires_grad=True)
        total = ds.zeros((), requires_grad=True)
        scatter(x, idx, out, total)
        y = ds.zeros(3, requires_grad=True)
        gather_after(out, total, y)
        return L1(y)
    tape_check(build, {"x": rnd(10)})


@ds.kernel
def accumulate_then_read(x: ds.f64[:], acc: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        acc[i % 2] += x[i] * x[i]
    for i in range(x.shape[0]):          # reading what the loop above accumulated: legal
        y[i] = acc[i % 2] * x[i]


def test_accumulate_then_read_in_one_kernel(py_backend):
    def build(x):
        acc = ds.zeros(2, requires_grad=True)
        y = ds.zeros(x.shape, requires_grad=True)
        accumulate_then_read(x, acc, y)
        return L1(y)
    tape_check(build, {"x": rnd(7)})


# -------------------------------------------------------------- ds.static
@ds.kernel
def static_loops(x: ds.f64[:, :], y: ds.f64[:]):
    for i in range(x.shape[0]):
        s = 0.0
        for k in ds.static(range(3)):
            s = s * x[i, k] + ds.sin(x[i, k] * (k + 1))
        for c in ds.static((0.5, 1.5)):
            s = s + c * x[i, 0]
        y[i] = s


def test_static_loops(py_backend):
    def build(x):
        y = ds.zeros(x.shape[:1], requires_grad=True)
        static_loops(x, y)
        return L1(y)
    tape_check(build, {"x": rnd(4, 3)})


# -------------------------------------------------- ds.serial time loops
@ds.kernel
def simulate(x: ds.f64[:, :], v: ds.f64[:, :], k: ds.f64[:], dt: float):
    n = x.shape[1]
    for t in ds.serial(range(x.shape[0] - 1)):
        for i in range(n):
            f = -k[0] * (x[t, i] - x[t, (i + 1) % n]) - k[0] * (x[t, i] - x[t, (i + n - 1) % n])
            v[t + 1, i] = v[t, i] + dt * (f - 0.1 * v[t, i] * ds.abs(v[t, i]))
        for i in range(n):                  # reads what the loop above wrote this step
            x[t + 1, i] = x[t, i] + dt * v[t + 1, i]


@ds.kernel
def final_energy(x: ds.f64[:, :], v: ds.f64[:, :], out: ds.f64[()]):
    T = x.shape[0] - 1
    for i in range(x.shape[1]):
        out[None] += x[T, i] * x[T, i] * (1.0 + i) + 0.5 * v[T, i] * v[T, i]


@ds.kernel
def set_row(src: ds.f64[:], dst: ds.f64[:, :], t: int):
    for i in range(src.shape[0]):
        dst[t, i] = src[i]          # copies an initial state in, as a recorded launch


def test_serial_time_loop(backend_all):
    T, n = 25, 4

    def build(x0, v0, k):
        x = ds.zeros((T + 1, n), requires_grad=True)
        v = ds.zeros((T + 1, n), requires_grad=True)
        set_row(x0, x, 0)
        set_row(v0, v, 0)
        simulate(x, v, k, 0.05)
        out = ds.zeros((), requires_grad=True)
        final_energy(x, v, out)
        return out
    tape_check(build, {"x0": rnd(n), "v0": rnd(n), "k": np.array([3.0])})


@ds.kernel
def serial_with_inner_carry(x: ds.f64[:, :], w: ds.f64[:]):
    for t in ds.serial(range(x.shape[0] - 1)):
        for i in range(x.shape[1]):
            s = x[t, i]
            for j in range(w.shape[0]):
                s = s * 0.9 + w[j] * ds.sin(s)
            x[t + 1, i] = s


def test_serial_loop_with_inner_carried_loop(py_backend):
    def build(x0, w):
        x = ds.zeros((6, x0.shape[0]), requires_grad=True)
        set_row(x0, x, 0)
        serial_with_inner_carry(x, w)
        return L2(x)
    tape_check(build, {"x0": rnd(3), "w": rnd(8, lo=-0.3, hi=0.3)})


# ---------------------------------------------------------------- ndrange
@ds.kernel
def stencil(u: ds.f64[:, :], c: ds.f64[:, :], out: ds.f64[:, :]):
    n, m = u.shape[0], u.shape[1]
    for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
        lap = u[i + 1, j] + u[i - 1, j] + u[i, j + 1] + u[i, j - 1] - 4.0 * u[i, j]
        out[i, j] = c[i, j] * lap + u[i, j] * u[i, j]
    for i, j in ds.ndrange(n, (0, 1)):
        out[i, j] = ds.tanh(u[i, j])


def test_ndrange(py_backend):
    def build(u, c):
        out = ds.zeros(u.shape, requires_grad=True)
        stencil(u, c, out)
        return L2(out)
    tape_check(build, {"u": rnd(5, 6), "c": rnd(5, 6)})


# ------------------------------------------------------------------ 0-d
@ds.kernel
def zero_d(x: ds.f64[()], y: ds.f64[:], out: ds.f64[()]):
    a = x[None] * 2.0
    out[None] = a * a + ds.sin(x[()])
    for i in range(y.shape[0]):
        out[None] += y[i] * x[None]


def test_zero_d_loss_and_top_level_statements(py_backend):
    def build(x, y):
        out = ds.zeros((), requires_grad=True)
        zero_d(x, y, out)
        return out
    g = tape_check(build, {"x": np.array(0.7), "y": rnd(4)})
    assert g["x"].shape == ()


# ----------------------------------------------------------------- wave
@ds.kernel
def wave_step(h: ds.f64[:, :, :], t: int, c: float, dt: float, dx: float):
    n, m = h.shape[1], h.shape[2]
    for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
        lap = (h[t, i + 1, j] + h[t, i - 1, j] + h[t, i, j + 1] + h[t, i, j - 1]
               - 4.0 * h[t, i, j]) / (dx * dx)
        h[t + 1, i, j] = 2.0 * h[t, i, j] - h[t - 1, i, j] + (c * dt) ** 2 * lap


@ds.kernel
def wave_loss(h: ds.f64[:, :, :], target: ds.f64[:, :], out: ds.f64[()]):
    T = h.shape[0] - 1
    for i, j in ds.ndrange(h.shape[1], h.shape[2]):
        d = h[T, i, j] - target[i, j]
        out[None] += d * d


@ds.kernel
def set_plane(src: ds.f64[:, :], dst: ds.f64[:, :, :], t: int):
    for i, j in ds.ndrange(src.shape[0], src.shape[1]):
        dst[t, i, j] = src[i, j]


def test_wave_equation(backend_all):
    T, n = 12, 7
    target = rnd(n, n)            # a plain numpy constant

    def build(h0):
        h = ds.zeros((T + 1, n, n), requires_grad=True)
        set_plane(h0, h, 0)
        set_plane(h0, h, 1)
        for t in range(1, T):
            wave_step(h, t, 1.0, 0.1, 0.2)
        out = ds.zeros((), requires_grad=True)
        wave_loss(h, target, out)
        return out
    h0 = rnd(n, n)
    g = tape_check(build, {"h0": h0})["h0"]

    def L(h0v):
        return float(build(ds.array(h0v)).numpy())
    rates = taylor_rates(L, h0, g, rnd(n, n))
    assert np.all(rates > 1.8), rates


# --------------------------------------------------------------- float32
@ds.kernel
def f32_kernel(x: ds.f32[:], w: ds.f32[:], y: ds.f32[:]):
    for i in range(x.shape[0]):
        s = x[i]
        for j in range(w.shape[0]):
            s = s * 0.8 + w[j] * ds.sin(s)
        y[i] = s * s + 2.0 * x[i]


@ds.kernel
def loss_f32(y: ds.f32[:], out: ds.f32[()]):
    for i in range(y.shape[0]):
        out[None] += ds.cos(y[i]) * (1.0 + 0.1 * i)


def test_float32_arrays(backend_all):
    def build(x, w):
        y = ds.zeros(x.shape, dtype=np.float32, requires_grad=True)
        f32_kernel(x, w, y)
        out = ds.zeros((), dtype=np.float32, requires_grad=True)
        loss_f32(y, out)
        return out
    inputs = {"x": rnd(5).astype(np.float32), "w": rnd(6, lo=-0.3, hi=0.3).astype(np.float32)}
    g = tape_check(build, inputs, eps=1e-2, rtol=2e-2, atol=1e-3)
    # the same kernel in float64 agrees to float32 precision
    with using("python"):
        g64 = _f64_twin_grads(inputs)
    for k in g:
        np.testing.assert_allclose(g[k], g64[k], rtol=1e-3, atol=1e-4)


@ds.kernel
def f_any(x, w, y):
    for i in range(x.shape[0]):
        s = x[i]
        for j in range(w.shape[0]):
            s = s * 0.8 + w[j] * ds.sin(s)
        y[i] = s * s + 2.0 * x[i]


@ds.kernel
def loss_any(y, out):
    for i in range(y.shape[0]):
        out[None] += ds.cos(y[i]) * (1.0 + 0.1 * i)


def _f64_twin_grads(inputs):
    def build(x, w):
        y = ds.zeros(x.shape, requires_grad=True)
        f_any(x, w, y)
        out = ds.zeros((), requires_grad=True)
        loss_any(y, out)
        return out
    return tape_grads(build, {k: v.astype(np.float64) for k, v in inputs.items()})[1]


def test_unannotated_kernel_float32_specialisation(py_backend):
    inputs = {"x": rnd(4).astype(np.float32), "w": rnd(3, lo=-0.3, hi=0.3).astype(np.float32)}

    def build(x, w):
        y = ds.zeros(x.shape, dtype=np.float32, requires_grad=True)
        f_any(x, w, y)
        out = ds.zeros((), dtype=np.float32, requires_grad=True)
        loss_any(y, out)
        return out
    g = tape_check(build, inputs, eps=1e-2, rtol=2e-2, atol=1e-3)
    g64 = _f64_twin_grads(inputs)
    for k in g:
        np.testing.assert_allclose(g[k], g64[k], rtol=1e-3, atol=1e-4)


# ------------------------------------------------- numpy constants, scratch
@ds.kernel
def with_constants(x: ds.f64[:], table: ds.f64[:], scratch: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        scratch[i] = ds.sin(x[i]) * table[i]        # written, then read below: an intermediate
    for i in range(x.shape[0]):
        y[i] = scratch[i] * scratch[(i + 1) % x.shape[0]] + x[i] * table[i]


def test_numpy_constants_and_scratch(backend_all):
    table = rnd(6)            # plain numpy: a constant

    def build(x):
        scratch = ds.zeros(6)          # no requires_grad: scratch inside one kernel
        y = ds.zeros(6, requires_grad=True)
        with_constants(x, table, scratch, y)
        return L1(y)
    tape_check(build, {"x": rnd(6)})

    def build_np(x):
        scratch = np.zeros(6)          # a plain numpy scratch array works the same
        y = ds.zeros(6, requires_grad=True)
        with_constants(x, table, scratch, y)
        return L1(y)
    tape_check(build_np, {"x": rnd(6)})


# ------------------------------------------------------- adjoint directly
def test_adjoint_called_directly(py_backend):
    x = ds.array(rnd(5), requires_grad=True)
    w = ds.array(rnd(5), requires_grad=True)
    y = ds.zeros(5, requires_grad=True)
    straight(x, w, y, 0.7)
    seed = rnd(5)
    y.grad.numpy()[...] = seed
    straight.adjoint(x, w, y, 0.7)
    assert np.all(y.grad.numpy() == 0)      # the adjoint consumed y's gradient (y was overwritten)
    eps = 1e-6
    for name, arr in (("x", x), ("w", w)):
        d = rnd(5)
        outs = []
        for s in (1, -1):
            xx = ds.array(x.numpy() + (s * eps * d if name == "x" else 0))
            ww = ds.array(w.numpy() + (s * eps * d if name == "w" else 0))
            yy = ds.zeros(5)
            straight(xx, ww, yy, 0.7)
            outs.append(float(np.dot(seed, yy.numpy())))
        fd = (outs[0] - outs[1]) / (2 * eps)
        assert math.isclose(float(np.dot(arr.grad.numpy(), d)), fd, rel_tol=1e-6)
    assert "def straight_adjoint" in straight.adjoint.source


# -------------------------------------------------------- custom adjoint
@ds.kernel
def cube(x: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        y[i] = x[i] * x[i] * x[i]


@ds.kernel
def cube_adjoint_kernel(x: ds.f64[:], y_grad: ds.f64[:], x_grad: ds.f64[:], factor: float):
    for i in range(x.shape[0]):
        x_grad[i] += factor * x[i] * x[i] * y_grad[i]


@cube.defadjoint
def cube_adjoint(x, y):
    # hand-written adjoint taking the kernel's own arguments (ds.Arrays): it launches kernels on their
    # .grad buffers.  Deliberately 2x the true adjoint, so the test sees which one ran.
    cube_adjoint_kernel(x, y.grad, x.grad, 6.0)


def test_defadjoint(py_backend):
    x = ds.array(rnd(4), requires_grad=True)
    y = ds.zeros(4, requires_grad=True)
    out = ds.zeros((), requires_grad=True)
    with ds.Tape() as tape:
        cube(x, y)
        loss1(y, out)
    tape.backward(out)
    want = 2 * 3.0 * x.numpy() ** 2 * (np.cos(y.numpy()) * (1.0 + 0.1 * np.arange(4)) + y.numpy())
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-12)
    # the hand-written adjoint's own launches were not recorded on the tape
    assert [k.__name__ for k, *_ in tape.launches] == ["cube", "loss1"]
    x.zero_grad()
    y.grad.numpy()[...] = 1.0
    cube.adjoint(x, y)                        # kernel.adjoint runs the hand-written one too
    np.testing.assert_allclose(x.grad.numpy(), 6.0 * x.numpy() ** 2, rtol=1e-12)


# ------------------------------------------------------ more constructs
@ds.kernel
def top_level_locals(x: ds.f64[:], c: ds.f64[:], y: ds.f64[:]):
    scale = c[0] * 2.0 + ds.sin(c[1])          # run once, read by every iteration below
    shift = scale * scale
    for i in range(x.shape[0]):
        y[i] = scale * x[i] + shift * x[i] * x[i]


def test_top_level_locals_read_in_parallel_loop(backend_all):
    def build(x, c):
        y = ds.zeros(x.shape, requires_grad=True)
        top_level_locals(x, c, y)
        return L1(y)
    tape_check(build, {"x": rnd(9), "c": rnd(2)})


@ds.kernel
def time_loop_locals(x: ds.f64[:, :], k: ds.f64[:], dt: float):
    for t in ds.serial(range(x.shape[0] - 1)):
        a = dt * k[0] * (1.0 + 0.1 * t)       # a per-step local, overwritten every step
        b = a * a
        for i in range(x.shape[1]):
            x[t + 1, i] = x[t, i] - a * ds.sin(x[t, i]) + b


def test_time_loop_step_locals(py_backend):
    def build(x0, k):
        x = ds.zeros((9, 4), requires_grad=True)
        set_row(x0, x, 0)
        time_loop_locals(x, k, 0.2)
        return L2(x)
    tape_check(build, {"x0": rnd(4), "k": np.array([1.3])})


@ds.kernel
def gather(x: ds.f64[:], idx: ds.i32[:], y: ds.f64[:]):
    for i in range(idx.shape[0]):
        y[i] = x[idx[i]] * x[idx[(i + 1) % idx.shape[0]]]     # the adjoint scatters into shared x_bar


def test_gather_scatters_in_adjoint(py_backend):
    idx = np.array([0, 2, 2, 1, 0, 3, 3, 3], dtype=np.int32)

    def build(x):
        y = ds.zeros(8, requires_grad=True)
        gather(x, idx, y)
        return L1(y)
    tape_check(build, {"x": rnd(4)})


@ds.kernel
def locals_misc(x: ds.f64[:], w: ds.f64[:], p: ds.vec2[:], y: ds.f64[:], q: ds.vec2[:]):
    for i in range(x.shape[0]):
        a = x[i]
        b = 1.0
        for j in range(15):
            a, b = b, a * 0.5 + b * ds.cos(a)      # tuple swap carried through a loop
        s = 0.0
        m = -1e9
        for j in range(w.shape[0]):
            s += w[j] * x[i]
            s *= 0.9
            m = max(m, w[j] * x[i])
        v = p[i]
        for k in range(2):
            v[k] = v[k] * x[i] + v[1 - k]            # a vector component indexed by a loop variable
        e = x[i] ** w[0] if x[i] > 0.0 else w[0] ** 2.0
        y[i] = a + b + s + m + e + ds.select(x[i] > 0.1, v.x, v.y * 2.0)
        q[i] = ds.vec2(v.y * a, ds.atan2(v.x, b))


@ds.kernel
def loss_vec(q: ds.vec2[:], out: ds.f64[()]):
    for i in range(q.shape[0]):
        out[None] += q[i].x * (1.0 + i) + ds.sin(q[i].y)


def test_tuple_swap_augassign_minmax_vector_components(py_backend):
    def build(x, w, p):
        y = ds.zeros(x.shape, requires_grad=True)
        q = ds.zeros(x.shape, dtype=ds.vec2, requires_grad=True)
        locals_misc(x, w, p, y, q)
        out = L1(y)
        loss_vec(q, out)
        return out
    x = np.array([0.3, -0.4, 0.8, 0.05, 0.6])
    tape_check(build, {"x": x, "w": rnd(6, lo=0.1, hi=1.0), "p": rnd(5, 2)}, dtypes={"p": ds.vec2})


@ds.kernel
def noisy(x: ds.f64[:], sigma: ds.f64[:], y: ds.f64[:], seed: int):
    for i in range(x.shape[0]):
        z = 0.0
        for j in range(4):
            z = z + sigma[0] * ds.randn(seed, i, j) + ds.randu(seed, i, j + 10) * x[i]
        y[i] = z * x[i]


def test_random_numbers_replayed(py_backend):
    def build(x, sigma):
        y = ds.zeros(x.shape, requires_grad=True)
        noisy(x, sigma, y, 7)
        return L1(y)
    tape_check(build, {"x": rnd(5), "sigma": np.array([0.4])})


@ds.func
def inner(v: float, k: int) -> float:
    s = v
    for j in range(k):
        s = s * 0.8 + ds.sin(s + j)
        if s > 5.0:
            break
    return s


@ds.func
def outer(v: float, w: float):
    a = inner(v, 4) * w
    b = inner(a, 3)
    return a + b, a * b


@ds.kernel
def func_tuple(x: ds.f64[:], w: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        t = 0.0
        for j in range(3):
            a, b = outer(x[i] + t, w[j])
            t = t + 0.1 * a - 0.05 * b
        y[i] = t


def test_nested_funcs_returning_tuples_in_loops(py_backend):
    def build(x, w):
        y = ds.zeros(x.shape, requires_grad=True)
        func_tuple(x, w, y)
        return L1(y)
    tape_check(build, {"x": rnd(4), "w": rnd(3)})


@ds.kernel
def f32_mixed(x: ds.f32[:], y: ds.f64[:], z: ds.f32[:]):
    for i in range(x.shape[0]):
        a = x[i] * 2.0                 # float32 (weak literal)
        b = ds.f64(a) * y[i]           # float64
        z[i] = b + ds.sqrt(a * a + 1.0)   # stored as float32


def test_mixed_precision_casts(py_backend):
    def build(x, y):
        z = ds.zeros(x.shape, dtype=np.float32, requires_grad=True)
        f32_mixed(x, y, z)
        out = ds.zeros((), dtype=np.float32, requires_grad=True)
        loss_f32(z, out)
        return out
    inputs = {"x": rnd(4).astype(np.float32), "y": rnd(4)}
    tape_check(build, inputs, eps=1e-3, rtol=1e-2, atol=1e-3)


@ds.kernel
def step_locals_and_stacks(x: ds.f64[:, :], c: ds.f64[:], acc: ds.f64[:]):
    for t in ds.serial(range(1, x.shape[0])):
        g = x[t - 1, 0] * c[0]            # a step local read from data, saved per step
        for i in range(x.shape[1]):
            s = x[t - 1, i]
            for j in range(3):            # a carried local: the parallel iteration's own value stack
                s = s * 0.9 + g * 0.1 * ds.sin(s)
            x[t, i] = s
            acc[t] += s * s               # accumulation into one element per step
        for i in range(x.shape[1]):
            acc[0] += x[t, i] * c[1]


def test_time_loop_with_step_locals_and_value_stacks(backend_all):
    def build(x0, c):
        x = ds.zeros((6, 3), requires_grad=True)
        set_row(x0, x, 0)
        acc = ds.zeros(6, requires_grad=True)
        step_locals_and_stacks(x, c, acc)
        out = L1(acc)
        loss2(x, out)
        return out
    tape_check(build, {"x0": rnd(3), "c": rnd(2)})


@ds.kernel
def nested_jumps(x: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        s = x[i]
        for a in range(5):
            k = 0
            while True:
                k += 1
                if k > 6:
                    break
                for b in range(4):
                    if b == 2:
                        continue
                    s = s * 0.95 + 0.1 * ds.sin(s * b)
                    if s > 2.0:
                        break
            if a == 3:
                break
            s = s + 0.01 * a
        for j in range(5, 2):            # empty range
            s = s * 100.0
        for j in range(2, 4):
            s = s * x[i]
        y[i] = s


def test_nested_loops_with_break_continue(py_backend):
    def build(x):
        y = ds.zeros(x.shape, requires_grad=True)
        nested_jumps(x, y)
        return L1(y)
    tape_check(build, {"x": np.array([0.3, 1.2, 1.9, -0.5])})


@ds.kernel
def vector_carry(p: ds.vec2[:], M: ds.mat2[:], q: ds.vec2[:]):
    for i in range(p.shape[0]):
        v = p[i]
        A = M[i]
        for j in range(40):               # a vector and a matrix carried through 40 iterations
            v = A @ v * 0.5 + ds.vec2(ds.sin(v.y), ds.cos(v.x)) * 0.3
            A = A * 0.9 + ds.outer(v, v) * 0.01
        q[i] = v


def test_vectors_and_matrices_carried_through_loops(py_backend):
    def build(p, M):
        q = ds.zeros(p.shape, dtype=ds.vec2, requires_grad=True)
        vector_carry(p, M, q)
        out = ds.zeros((), requires_grad=True)
        loss_vec(q, out)
        return out
    tape_check(build, {"p": rnd(3, 2), "M": rnd(3, 2, 2)}, dtypes={"p": ds.vec2, "M": ds.mat2})


@ds.kernel
def ints_and_bools(x: ds.f64[:], n: ds.i32[:], flag: bool, y: ds.f64[:]):
    for i in range(x.shape[0]):
        m = n[i] * 2 + 1
        s = x[i]
        if flag:
            s = s * m
        q = int(s * 3.0)                  # piecewise constant: no derivative through q
        y[i] = s * q + float(m) * x[i] + x[i] // 0.3 + x[i] % 0.7


def test_int_and_bool_values(py_backend):
    n = np.array([1, 2, 3, 0], dtype=np.int32)
    for flag in (True, False):
        def build(x):
            y = ds.zeros(x.shape, requires_grad=True)
            ints_and_bools(x, n, flag, y)
            return L1(y)
        tape_check(build, {"x": np.array([0.31, 1.23, 1.91, -0.52])})


@ds.kernel
def powers(x: ds.f64[:], w: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        y[i] = x[i] ** w[i] + w[i] ** 2 + x[i] ** 3 + ds.pow(x[i], 0.5) + 2.0 ** w[i]


def test_powers(py_backend):
    def build(x, w):
        y = ds.zeros(x.shape, requires_grad=True)
        powers(x, w, y)
        return L1(y)
    tape_check(build, {"x": np.array([0.3, 1.2, 1.9, 0.5]), "w": np.array([0.3, -1.2, 2.5, 1.0])})


def test_power_with_zero_base(py_backend):
    # d/dw 0 ** w is 0 for w > 0 (not log(0) * 0 = nan)
    x = ds.array(np.array([0.0, 1.0]), requires_grad=True)
    w = ds.array(np.array([2.0, 3.0]), requires_grad=True)
    y = ds.zeros(2, requires_grad=True)
    with ds.Tape() as tape:
        zero_base_pow(x, w, y)
    tape.backward(y, np.ones(2))
    np.testing.assert_allclose(w.grad.numpy(), [0.0, 0.0])
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 3.0])


@ds.kernel
def zero_base_pow(x: ds.f64[:], w: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        y[i] = x[i] ** w[i]


# ---------------------------------------------------- atomic min / max
@ds.kernel
def segment_extrema(x: ds.f64[:], seg: ds.i64[:], hi: ds.f64[:], lo: ds.f64[:, :]):
    for i in range(x.shape[0]):
        v = x[i] * x[i] + 0.5 * x[i]
        ds.atomic_max(hi, seg[i], v)
        for k in range(2):
            ds.atomic_min(lo, (seg[i], k), ds.sin(x[i] * (k + 1)))


def test_atomic_min_max_adjoint(backend_all):
    seg = np.array([0, 0, 0, 1, 1, 2, 2, 2], dtype=np.int64)

    def build(x):
        hi = ds.full(3, -10.0, requires_grad=True)
        lo = ds.full((3, 2), 10.0, requires_grad=True)
        segment_extrema(x, seg, hi, lo)
        out = L1(hi)
        loss2(lo, out)
        return out
    g = tape_check(build, {"x": np.array([0.3, -0.9, 0.5, 0.8, -0.2, 0.1, 0.7, -0.4])})
    assert np.count_nonzero(g["x"]) >= 3


def test_atomic_max_ties_split_equally(py_backend):
    seg = np.array([0, 0, 0, 1], dtype=np.int64)
    x = ds.array(np.array([0.3, 0.3, -0.1, 0.5]), requires_grad=True)      # x[0] and x[1] tie for hi[0]
    hi = ds.full(2, -10.0, requires_grad=True)
    lo = ds.full((2, 2), 10.0, requires_grad=True)
    with ds.Tape() as tape:
        segment_extrema(x, seg, hi, lo)
    tape.backward(hi, np.array([1.0, 1.0]))
    slope = 2 * 0.3 + 0.5
    np.testing.assert_allclose(x.grad.numpy(), [slope / 2, slope / 2, 0.0, 2 * 0.5 + 0.5], rtol=1e-14)
    np.testing.assert_allclose(hi.grad.numpy(), 0.0)       # consumed by the winners


def test_atomic_max_that_nobody_wins_keeps_the_adjoint(py_backend):
    seg = np.array([0, 0], dtype=np.int64)
    x = ds.array(np.array([0.3, 0.2]), requires_grad=True)
    hi = ds.full(1, 5.0, requires_grad=True)                 # the earlier value stays the maximum
    lo = ds.full((1, 2), 10.0, requires_grad=True)
    with ds.Tape() as tape:
        segment_extrema(x, seg, hi, lo)
    tape.backward(hi, np.array([1.0]))
    np.testing.assert_allclose(x.grad.numpy(), 0.0)
    np.testing.assert_allclose(hi.grad.numpy(), 1.0)


# ----------------------------------------------- code outside parallel loops
@ds.kernel
def top_level_control(x: ds.f64[:], out: ds.f64[()]):
    s = x[0]
    k = 0
    while k < 5 and s < 3.0:          # runs once, outside any parallel loop
        s = s * 1.3 + x[1]
        k += 1
    if s > 1.0:
        s = s * s
    else:
        s = -s
    for i in range(x.shape[0]):
        out[None] += x[i] * s
    t = 0.0
    if x[2] > 0.0:
        t = ds.sin(x[3] * s + 1.0)
    out[None] += t


@pytest.mark.parametrize("x", [[0.4, 0.3, 0.5, -0.2], [1.4, 0.3, -0.5, -0.2]])
def test_serial_code_outside_parallel_loops(x, py_backend):
    def build(x):
        out = ds.zeros((), requires_grad=True)
        top_level_control(x, out)
        return out
    tape_check(build, {"x": np.array(x)})


@ds.func
def vec_early(p: ds.vec3, k: int) -> ds.vec3:
    q = p
    for j in range(k):
        if ds.norm(q) > 2.0:
            return q * 0.5
        q = q * 1.2 + ds.cross(q, ds.vec3(0.1, 0.2, 0.3))
    return q


@ds.kernel
def matrix_entries(p: ds.vec3[:], A: ds.mat2[:], y: ds.f64[:], B: ds.mat2[:]):
    for i in range(p.shape[0]):
        q = vec_early(p[i], 6)
        M = ds.outer(q, p[i]) + ds.identity(3)
        y[i] = ds.det(M) + ds.inverse(M)[1, 2] + q[i % 3]
        N = A[i]
        for r in range(2):
            for c in range(2):
                N[r, c] = N[r, c] * N[c, r] + 0.1      # matrix entries assigned by run-time indices
        B[i] = N @ A[i].T


@ds.kernel
def loss_mat(B: ds.mat2[:], out: ds.f64[()]):
    for i in range(B.shape[0]):
        out[None] += B[i][0, 1] * 2.0 + B[i][1, 1] * B[i][0, 0]


def test_vector_funcs_with_early_return_and_matrix_entries(py_backend):
    def build(p, A):
        y = ds.zeros(p.shape, requires_grad=True)
        B = ds.zeros(A.shape, dtype=ds.mat2, requires_grad=True)
        matrix_entries(p, A, y, B)
        out = L1(y)
        loss_mat(B, out)
        return out
    tape_check(build, {"p": rnd(4, 3, lo=-0.5, hi=0.5), "A": rnd(4, 2, 2)}, dtypes={"p": ds.vec3, "A": ds.mat2})


@ds.kernel
def serial_atomic_max(x: ds.f64[:], hi: ds.f64[:]):
    for i in range(x.shape[0]):
        hi[0] = x[i]
    ds.atomic_max(hi, 1, x[0] * 2.0)          # MARK: outside a parallel loop


def test_atomic_max_outside_parallel_loops_raises(py_backend):
    x = ds.array(rnd(3), requires_grad=True)
    hi = ds.zeros(2, requires_grad=True)
    with ds.Tape() as tape:
        serial_atomic_max(x, hi)
    with pytest.raises(ds.AutodiffError) as ei:
        tape.backward(hi, np.ones(2))
    msg = str(ei.value)
    assert "atomic_max" in msg and "serial_atomic_max" in msg
    assert f"test_ad_kernels.py:{_line_of(serial_atomic_max, '# MARK')}:" in msg


def _line_of(kernel, marker):
    import inspect
    lines, start = inspect.getsourcelines(kernel.src.pyfn)
    return start + next(k for k, t in enumerate(lines) if marker in t)


@ds.kernel
def deep_nesting(x: ds.f64[:], w: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        s = x[i]
        for a in range(4):
            k = 0
            while k < a + 2 and s < 5.0:           # a while in a for, with bounds that vary
                if s > 1.0:
                    s = s * 0.9 + w[k % 3]
                else:
                    for b in range(k + 1):          # a for in an if in a while in a for
                        s = s + 0.1 * ds.sin(s * b + w[b % 3])
                k += 1
            t = s
            for c in range(a, 4):
                t = t * 0.8 + s * 0.1
                if t > 2.0:
                    break
            s = 0.5 * (s + t)
        y[i] = s


def test_deeply_nested_loops(py_backend):
    def build(x, w):
        y = ds.zeros(x.shape, requires_grad=True)
        deep_nesting(x, w, y)
        return L1(y)
    tape_check(build, {"x": np.array([0.3, 1.2, -0.4, 0.9]), "w": np.array([0.2, -0.3, 0.5])})


@ds.kernel
def overwrite_without_read(x: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        for j in range(3):
            y[i] = x[i] * j                 # overwritten, never read: only the last write counts
        y[i] += x[i] * x[i]                 # accumulating after a write is legal
        for j in range(4):
            y[i] += ds.sin(x[i] * j)


def test_overwrites_and_accumulation_without_reads(py_backend):
    def build(x):
        y = ds.zeros(x.shape, requires_grad=True)
        overwrite_without_read(x, y)
        return L1(y)
    tape_check(build, {"x": np.array([0.3, 1.2, -0.4])})
