"""difsci.kernels.integrators and .sampling against NumPy/SciPy references; gradients through
whole trajectories against finite differences."""
from __future__ import annotations

import numpy as np
import pytest
from test_kernels_common import grad_check, probe_loss, rng

import difsci as ds
import difsci.kernels as dk


@ds.func
def decay(y, s, p):
    """dy/ds = -p y + sin(s)"""
    return -p * y + ds.sin(s)


@ds.func
def rotate(y, s, w):
    """dy/ds = w * (-y1, y0): rotation of a 2-vector at angular speed w."""
    return w * ds.vec2(-y[1], y[0])


@ds.func
def spring_accel(x, v, t, i):
    """Periodic chain of unit springs with a little drag."""
    n = x.shape[1]
    return x[t, (i + 1) % n] + x[t, (i + n - 1) % n] - 2.0 * x[t, i] - 0.1 * v[t, i]


@ds.func
def pendulum_accel(x, t, i):
    return -ds.sin(x[t, i])


@ds.func
def ring_rhs(Y, r, i, s):
    """dy_i/ds = y_{i+1} - y_i (a ring: linear, exp(sA) known)."""
    n = Y.shape[1]
    return Y[r, (i + 1) % n] - Y[r, i]


def rk4_np(f, y, s, dt):
    k1 = f(y, s)
    k2 = f(y + dt / 2 * k1, s + dt / 2)
    k3 = f(y + dt / 2 * k2, s + dt / 2)
    k4 = f(y + dt * k3, s + dt)
    return y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def test_rk4_per_element(py):
    T, n, dt = 12, 4, 0.1
    p = rng(0).uniform(0.5, 2, n)
    y = np.zeros((T + 1, n))
    y[0] = rng(1).standard_normal(n)
    dk.rk4_kernel(decay)(y, p, 0.3, dt)
    ref = y[0].copy()
    for t in range(T):
        ref = rk4_np(lambda yy, s: -p * yy + np.sin(s), ref, 0.3 + t * dt, dt)
        np.testing.assert_allclose(y[t + 1], ref, rtol=1e-12, atol=1e-14)
    step = dk.rk4_step_func(decay)
    assert abs(step(1.5, 0.2, 0.1, 2.0) - rk4_np(lambda yy, s: -2 * yy + np.sin(s), 1.5, 0.2, 0.1)) < 1e-14


def test_rk4_vectors_fourth_order(py):
    def final(T):
        y = ds.zeros((T + 1, 1), dtype=ds.vec2)
        y.numpy()[0, 0] = [1.0, 0.0]
        dk.rk4_kernel(rotate)(y, np.array([1.0]), 0.0, 2.0 / T)
        return y.numpy()[T, 0]
    exact = np.array([np.cos(2.0), np.sin(2.0)])
    e1, e2 = (np.linalg.norm(final(T) - exact) for T in (10, 20))
    assert 14 < e1 / e2 < 18                      # halving dt cuts the error 16 times


def _ring_run(T, n, dt):
    y = np.zeros((T + 1, n))
    y[0] = rng(2).standard_normal(n)
    scratch = [np.zeros((T, n)) for _ in range(7)]
    dk.rk4_system_kernel(ring_rhs)(y, *scratch, 0.0, dt)
    return y, np.roll(np.eye(n), 1, axis=1) - np.eye(n)


def test_rk4_system_against_scipy(py):
    linalg = pytest.importorskip("scipy.linalg")
    T, n, dt = 20, 5, 0.05
    y, A = _ring_run(T, n, dt)
    np.testing.assert_allclose(y[T], linalg.expm(A * T * dt) @ y[0], rtol=0, atol=2e-6)   # RK4 truncation


def test_rk4_system(py):
    T, n, dt = 20, 5, 0.05
    y, A = _ring_run(T, n, dt)
    ref = y[0].copy()
    for t in range(T):
        ref = rk4_np(lambda yy, s: A @ yy, ref, t * dt, dt)
    np.testing.assert_allclose(y[T], ref, rtol=1e-12, atol=1e-13)


def test_symplectic_euler_and_verlet(py):
    T, n, dt = 15, 6, 0.05
    x0, v0 = rng(3).standard_normal(n), rng(4).standard_normal(n)
    x, v = np.zeros((T + 1, n)), np.zeros((T + 1, n))
    x[0], v[0] = x0, v0
    dk.symplectic_euler_kernel(spring_accel)(x, v, dt)
    xr, vr = x0.copy(), v0.copy()
    for t in range(T):
        a = np.roll(xr, -1) + np.roll(xr, 1) - 2 * xr - 0.1 * vr
        vr = vr + dt * a
        xr = xr + dt * vr
        np.testing.assert_allclose(x[t + 1], xr, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(v[t + 1], vr, rtol=1e-12, atol=1e-13)
    x, v, a = np.zeros((T + 1, n)), np.zeros((T + 1, n)), np.zeros((T + 1, n))
    x[0], v[0] = x0, v0
    dk.velocity_verlet_kernel(pendulum_accel)(x, v, a, dt)
    xr, vr = x0.copy(), v0.copy()
    for t in range(T):
        ar = -np.sin(xr)
        xr = xr + dt * vr + dt * dt / 2 * ar
        vr = vr + dt / 2 * (ar - np.sin(xr))
        np.testing.assert_allclose(x[t + 1], xr, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(v[t + 1], vr, rtol=1e-12, atol=1e-13)


@ds.kernel
def euler_by_hand(x, v, k, dt: float):
    """The array funcs inside a user's own time loop (vec2 particles pulled to the origin)."""
    for t in ds.serial(range(x.shape[0] - 1)):
        for i in range(x.shape[1]):
            dk.semi_implicit_euler(x, v, -k[i] * x[t, i], t, i, dt)


def test_array_step_funcs_with_vectors(py):
    T, n, dt = 8, 3, 0.1
    x, v = ds.zeros((T + 1, n), dtype=ds.vec2), ds.zeros((T + 1, n), dtype=ds.vec2)
    x.numpy()[0] = rng(5).standard_normal((n, 2))
    k = rng(6).uniform(1, 2, n)
    euler_by_hand(x, v, k, dt)
    xr, vr = x.numpy()[0].copy(), np.zeros((n, 2))
    for _ in range(T):
        vr = vr - dt * k[:, None] * xr
        xr = xr + dt * vr
    np.testing.assert_allclose(x.numpy()[T], xr, rtol=1e-12, atol=1e-13)


def test_trajectory_gradients(py):
    T, n, dt = 6, 3, 0.1

    def build(y0, p, x0, v0, k):
        y = ds.zeros((T + 1, n), requires_grad=True)
        y.numpy()[0] = y0.numpy()
        dk.rk4_kernel(decay)(y, p, 0.0, dt)
        x, v = (ds.zeros((T + 1, n), requires_grad=True) for _ in range(2))
        x.numpy()[0], v.numpy()[0] = x0.numpy(), v0.numpy()
        dk.symplectic_euler_kernel(spring_accel)(x, v, dt)
        xv, vv, av = (ds.zeros((T + 1, n), requires_grad=True) for _ in range(3))
        xv.numpy()[0], vv.numpy()[0] = x0.numpy(), v0.numpy()
        dk.velocity_verlet_kernel(pendulum_accel)(xv, vv, av, dt)
        xe, ve = (ds.zeros((T + 1, n), dtype=ds.vec2, requires_grad=True) for _ in range(2))
        xe.numpy()[0] = np.stack([x0.numpy(), v0.numpy()], -1)
        euler_by_hand(xe, ve, k, dt)
        return probe_loss(y[T], x[T], v[T], xv[T], vv[T], xe[T])
    # the initial states enter by copy: check the gradient w.r.t. the parameters
    grad_check(build, {"y0": rng(7).standard_normal(n), "p": rng(8).uniform(0.5, 2, n),
                       "x0": rng(9).standard_normal(n), "v0": rng(10).standard_normal(n),
                       "k": rng(11).uniform(1, 2, n)}, wrt=["p", "k"])


def test_initial_state_gradient_through_a_time_axis(py):
    T, n, dt = 6, 4, 0.05

    def run(y0, with_tape):
        y = ds.zeros((T + 1, n), requires_grad=with_tape)
        y.numpy()[0] = y0
        sc = [ds.zeros((T, n), requires_grad=with_tape) for _ in range(7)]
        out = ds.zeros((), requires_grad=with_tape)
        if not with_tape:
            dk.rk4_system_kernel(ring_rhs)(y, *sc, 0.0, dt)
            return float(probe_loss(y[T]).numpy())
        with ds.Tape() as tape:
            dk.rk4_system_kernel(ring_rhs)(y, *sc, 0.0, dt)
            out = probe_loss(y[T])
        tape.backward(out)
        return y.grad.numpy()[0].copy()
    y0 = rng(12).standard_normal(n)
    g = run(y0, True)
    d = rng(13).standard_normal(n)
    fd = (run(y0 + 1e-6 * d, False) - run(y0 - 1e-6 * d, False)) / 2e-6
    assert abs(g @ d - fd) < 1e-7 * max(1, abs(fd))


def test_euler_on_cpu_matches_the_oracle(cpu):
    T, n, dt = 50, 64, 0.02
    res = []
    for backend in ("cpu", "python"):
        ds.init(backend=backend)
        x, v = np.zeros((T + 1, n)), np.zeros((T + 1, n))
        x[0], v[0] = rng(14).standard_normal(n), rng(15).standard_normal(n)
        dk.symplectic_euler_kernel(spring_accel)(x, v, dt)
        res.append(x)
    ds.init(backend="cpu")
    np.testing.assert_allclose(res[0], res[1], rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ sampling
def test_uniform_and_latin_hypercube_numpy():
    lo, hi = [0.0, -1.0, 2.0], [1.0, 1.0, 2.5]
    u = dk.uniform_box(500, lo, hi, seed=3)
    assert u.shape == (500, 3) and np.all(u >= lo) and np.all(u < hi)
    np.testing.assert_array_equal(u, dk.uniform_box(500, lo, hi, seed=3))
    assert not np.array_equal(u, dk.uniform_box(500, lo, hi, seed=4))
    h = dk.latin_hypercube(50, lo, hi, seed=1)
    for d in range(3):       # one point in each of the 50 strata of every axis
        strata = np.floor((h[:, d] - lo[d]) / (hi[d] - lo[d]) * 50).astype(int)
        assert sorted(strata) == list(range(50))
    with pytest.raises(ValueError):
        dk.uniform_box(3, [0, 1], [1, 0])


def test_sampling_kernels(py):
    out = np.zeros((400, 2))
    lo, hi = np.array([-1.0, 2.0]), np.array([1.0, 3.0])
    dk.randu_box(out, lo, hi, 7)
    assert np.all(out >= lo) and np.all(out < hi)
    assert abs(out[:, 0].mean()) < 0.15 and abs(out[:, 1].mean() - 2.5) < 0.08
    again = np.zeros((400, 2))
    dk.randu_box(again, lo, hi, 7)
    np.testing.assert_array_equal(out, again)
    z = np.zeros((2000, 1))
    dk.randn_fill(z, 1.0, 2.0, 3)
    assert abs(z.mean() - 1.0) < 0.2 and abs(z.std() - 2.0) < 0.2
    strata = dk.lhs_strata(30, 2, seed=0)
    h = np.zeros((30, 2))
    dk.latin_hypercube_fill(h, strata, lo, hi, 11)
    for d in range(2):
        assert sorted(np.floor((h[:, d] - lo[d]) / (hi[d] - lo[d]) * 30).astype(int)) == list(range(30))


def test_sampling_kernel_gradient_in_the_box(py):
    def build(lo, hi):
        out = ds.zeros((6, 2), requires_grad=True)
        dk.randu_box(out, lo, hi, 5)
        return probe_loss(out)
    grad_check(build, {"lo": np.array([0.0, 1.0]), "hi": np.array([2.0, 1.5])})


def test_sampling_on_cpu_matches_the_oracle(cpu):
    a, b = np.zeros((100, 3)), np.zeros((100, 3))
    dk.randu_box(a, np.zeros(3), np.ones(3), 9)
    ds.init(backend="python")
    dk.randu_box(b, np.zeros(3), np.ones(3), 9)
    ds.init(backend="cpu")
    np.testing.assert_array_equal(a, b)
