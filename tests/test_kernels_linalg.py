"""difsci.kernels.linalg and .activations against NumPy, and their gradients against finite differences."""
from __future__ import annotations

import math

import numpy as np
import pytest
from test_kernels_common import grad_check, probe_loss, rng

import difsci as ds
import difsci.kernels as dk
from difsci.kernels import activations as act

NP_ACTS = {
    "identity": lambda v: v, "tanh": np.tanh, "sin": np.sin, "relu": lambda v: np.maximum(v, 0),
    "softplus": lambda v: np.log1p(np.exp(v)), "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
    "gelu": lambda v: 0.5 * v * (1 + np.vectorize(math.erf)(v / math.sqrt(2))),
}


@pytest.mark.parametrize("shape", [(5, 7, 6), (1, 1, 1), (3, 2, 9), (4, 3, 4)])
def test_matmul_matvec(py, shape):
    m, k, n = shape
    A, B = rng(0).standard_normal((m, k)), rng(1).standard_normal((k, n))
    C = np.zeros((m, n))
    dk.matmul(A, B, C)
    np.testing.assert_allclose(C, A @ B, rtol=1e-12, atol=1e-12)
    C2 = np.full((m, n), 7.0)
    dk.matmul_blocked(A, B, C2)
    np.testing.assert_allclose(C2, A @ B, rtol=1e-12, atol=1e-12)
    y = np.zeros(m)
    dk.matvec(A, B[:, 0].copy(), y)
    np.testing.assert_allclose(y, A @ B[:, 0], rtol=1e-12, atol=1e-12)


def test_batched(py):
    A, B = rng(2).standard_normal((3, 4, 5)), rng(3).standard_normal((3, 5, 6))
    C = np.zeros((3, 4, 6))
    dk.batched_matmul(A, B, C)
    np.testing.assert_allclose(C, A @ B, rtol=1e-12, atol=1e-12)
    x = rng(4).standard_normal((3, 5))
    y = np.zeros((3, 4))
    dk.batched_matvec(A, x, y)
    np.testing.assert_allclose(y, np.einsum("bij,bj->bi", A, x), rtol=1e-12)


def test_matmul_gradients(py):
    def build(A, B, x):
        C = ds.zeros((A.shape[0], B.shape[1]), requires_grad=True)
        dk.matmul(A, B, C)
        C2 = ds.zeros(C.shape, requires_grad=True)
        dk.matmul_blocked(A, B, C2)
        y = ds.zeros(A.shape[0], requires_grad=True)
        dk.matvec(A, x, y)
        Cb = ds.zeros((2,) + C.shape, requires_grad=True)
        dk.batched_matmul(ds.array(np.stack([A.numpy()] * 2)), ds.array(np.stack([B.numpy()] * 2)), Cb)
        return probe_loss(C, y, C2)
    grad_check(build, {"A": rng(5).standard_normal((3, 4)), "B": rng(6).standard_normal((4, 6)),
                       "x": rng(7).standard_normal(4)})


def test_batched_matmul_gradients(py):
    def build(A, B, x):
        C = ds.zeros((A.shape[0], A.shape[1], B.shape[2]), requires_grad=True)
        dk.batched_matmul(A, B, C)
        y = ds.zeros(A.shape[:2], requires_grad=True)
        dk.batched_matvec(A, x, y)
        return probe_loss(C, y)
    grad_check(build, {"A": rng(8).standard_normal((2, 3, 4)), "B": rng(9).standard_normal((2, 4, 5)),
                       "x": rng(10).standard_normal((2, 4))})


@pytest.mark.parametrize("d", [2, 3, 4])
def test_batched_solve(py, d):
    A = rng(d).standard_normal((5, d, d)) + 3 * np.eye(d)
    b = rng(d + 10).standard_normal((5, d))
    x = dk.solve_batched(A, b)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(A, b[..., None])[..., 0], rtol=1e-10, atol=1e-12)

    def build(A, b):
        x = ds.zeros(5, dtype=ds.vec(d, ds.f64), requires_grad=True)
        dk.batched_solve(A, b, x)
        return probe_loss(x)
    grad_check(build, {"A": A, "b": b}, dtypes={"A": ds.mat(d, d, ds.f64), "b": ds.vec(d, ds.f64)})


def test_explicit_small_solves(py):
    A = rng(11).standard_normal((3, 3)) + 2 * np.eye(3)
    b = rng(12).standard_normal(3)
    np.testing.assert_allclose(dk.solve3(A, b), np.linalg.solve(A, b), rtol=1e-12)
    np.testing.assert_allclose(dk.solve2(A[:2, :2], b[:2]), np.linalg.solve(A[:2, :2], b[:2]), rtol=1e-12)
    np.testing.assert_allclose(dk.solve(A, b), np.linalg.solve(A, b), rtol=1e-12)
    g = ds.grad(lambda_sum_solve3())(A, b)      # derivative through Cramer's rule
    eps = 1e-6
    fd = np.zeros((3, 3))
    for idx in np.ndindex(3, 3):
        d = np.zeros((3, 3))
        d[idx] = eps
        fd[idx] = (np.linalg.solve(A + d, b).sum() - np.linalg.solve(A - d, b).sum()) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


_SUM_SOLVE3 = []


def lambda_sum_solve3():
    if not _SUM_SOLVE3:
        @ds.func
        def sum_solve3(A: ds.mat3, b: ds.vec3) -> float:
            x = dk.solve3(A, b)
            return x[0] + x[1] + x[2]
        _SUM_SOLVE3.append(sum_solve3)
    return _SUM_SOLVE3[0]


@pytest.mark.parametrize("name", sorted(NP_ACTS))
def test_activations(py, name):
    v = np.linspace(-30, 30, 121)
    f = act.ACTIVATIONS[name]
    got = np.array([f(float(t)) for t in v])
    np.testing.assert_allclose(got, NP_ACTS[name](v), rtol=1e-13, atol=1e-15)
    df = ds.grad(f)
    for t in (-2.3, -0.4, 0.7, 1.9):            # derivative vs central differences
        fd = (f(t + 1e-6) - f(t - 1e-6)) / 2e-6
        assert abs(df(t) - fd) < 1e-7 * max(1.0, abs(fd))
    assert np.isfinite(df(80.0)) and np.isfinite(df(-80.0))


def test_tanh_rule_composes(py):
    """tanh's jvp rule (tanh' = 1 - tanh^2) composes: second and third derivatives by nested grad and
    by jvp of grad equal the closed forms (the PINN's streams differentiate through the rule)."""
    d2, d3 = ds.grad(ds.grad(act.tanh)), ds.grad(ds.grad(ds.grad(act.tanh)))
    jd1 = ds.jvp(ds.grad(act.tanh))
    for v in (-2.3, -0.4, 0.0, 0.7, 1.9):
        t = math.tanh(v)
        s = 1.0 - t * t
        assert abs(d2(v) - (-2.0 * t * s)) < 1e-14
        assert abs(d3(v) - (-2.0 * s * (1.0 - 3.0 * t * t))) < 1e-14
        val, tan = jd1(v, 0.5)
        assert abs(val - s) < 1e-15 and abs(tan - 0.5 * (-2.0 * t * s)) < 1e-14
    assert d2(80.0) == 0.0 and d3(-80.0) == 0.0


def test_activation_lookup():
    assert dk.activation("TANH") is act.tanh and dk.activation(None) is act.identity
    assert dk.activation(act.gelu) is act.gelu
    with pytest.raises(ValueError, match="unknown activation"):
        dk.activation("swish")
    assert dk.dense_kernel("tanh") is dk.dense_kernel(act.tanh)


@pytest.mark.parametrize("name", ["tanh", "relu", "gelu", "identity"])
def test_dense_layer(py, name):
    x, W, b = rng(13).standard_normal((9, 7)), rng(14).standard_normal((7, 6)), rng(15).standard_normal(6)
    y = dk.dense(x, W, b, name)
    np.testing.assert_allclose(y.numpy(), NP_ACTS[name](x @ W + b), rtol=1e-12, atol=1e-12)

    def build(x, W, b):
        return probe_loss(dk.dense(x, W, b, name))
    grad_check(build, {"x": x[:3], "W": W[:, :5], "b": b[:5]})


def test_dense_with_a_custom_func(py):
    @ds.func
    def swish(v):
        return v / (1.0 + ds.exp(-v))
    x, W, b = rng(16).standard_normal((4, 3)), rng(17).standard_normal((3, 2)), rng(18).standard_normal(2)
    z = x @ W + b
    np.testing.assert_allclose(dk.dense(x, W, b, swish).numpy(), z / (1 + np.exp(-z)), rtol=1e-12)


def test_dense_float32_on_cpu(cpu):
    x = rng(19).standard_normal((200, 20)).astype(np.float32)
    W = (rng(20).standard_normal((20, 13)) / 4).astype(np.float32)
    b = rng(21).standard_normal(13).astype(np.float32)
    k = dk.dense_kernel("tanh")
    y = np.zeros((200, 13), np.float32)
    k(x, W, b, np.empty_like(y), y)
    np.testing.assert_allclose(y, np.tanh(x.astype(np.float64) @ W + b), rtol=2e-5, atol=2e-6)
    # gradient of the float32 kernel agrees with the float64 oracle's
    seeds = rng(22).standard_normal((200, 13))
    grads = {}
    for dt, backend in ((np.float32, "cpu"), (np.float64, "python")):
        ds.init(backend=backend)
        xa, Wa, ba = (ds.array(a.astype(dt), requires_grad=True) for a in (x, W, b))
        ya = ds.zeros((200, 13), dtype=dt, requires_grad=True)
        za = ds.zeros((200, 13), dtype=dt, requires_grad=True)
        with ds.Tape() as tape:
            k(xa, Wa, ba, za, ya)
        tape.backward(ya, seeds.astype(dt))
        grads[backend] = [a.grad.numpy().astype(np.float64) for a in (xa, Wa, ba)]
    ds.init(backend="cpu")
    for g32, g64 in zip(grads["cpu"], grads["python"]):
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-4 * np.abs(g64).max())


def test_dense_over_derivative_streams(py):
    """Streams (value, d, d2) of tanh(x @ W + b) along a path x(s): the chain rule, bias in the value only."""
    N = 5
    x, W, b = rng(23).standard_normal((N, 3)), rng(24).standard_normal((3, 4)), rng(25).standard_normal(4)
    dx, d2x = rng(26).standard_normal((N, 3)), rng(27).standard_normal((N, 3))
    k = dk.dense_kernel("tanh", [(), (0,), (0, 0)])
    assert k is dk.dense_kernel(act.tanh, [(), (0,), (0, 0)]) and k is not dk.dense_kernel("tanh")
    y = np.zeros((3, N, 4))
    zs = np.empty((3, N, 4))
    k(np.concatenate([x, dx, d2x]), W, b, zs.reshape(3 * N, 4), zs, y)
    y = y.reshape(3 * N, 4)
    z, dz, d2z = x @ W + b, dx @ W, d2x @ W
    t = np.tanh(z)
    np.testing.assert_allclose(y[:N], t, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(y[N:2 * N], (1 - t * t) * dz, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(y[2 * N:], -2 * t * (1 - t * t) * dz * dz + (1 - t * t) * d2z, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="value stream"):
        dk.dense_kernel("tanh", [(0,)])


def test_tanh_rational_float32_accuracy_and_derivative(cpu):
    v = np.linspace(-12, 12, 4001).astype(np.float32)
    out = np.zeros_like(v)

    @ds.kernel
    def apply(v, out):
        for i in range(v.shape[0]):
            out[i] = act.tanh_rational(v[i])
    apply(v, out)
    np.testing.assert_allclose(out, np.tanh(v.astype(np.float64)), rtol=0, atol=4e-7)
    assert act.for_dtype(act.tanh, np.float32) is act.tanh_rational
    assert act.for_dtype(act.tanh, np.float64) is act.tanh and act.for_dtype(act.sin, np.float32) is act.sin
    d = ds.jvp(act.tanh_rational)
    t, dt = d(0.3, 1.0)
    assert abs(dt - (1 - t * t)) < 1e-15


@pytest.mark.parametrize("cond", [False, True])
def test_dense_streams_points_last(py, cond):
    """dense_streams_kernel: the streams (value, d/dx0, d/dx1, d2/dx1^2) of tanh(h @ W + b), points last,
    the bias entering through the product's extra row; condition points value-only."""
    S, N, M, fi, fo = 4, 7, 5, 3, 4
    streams = [(), (0,), (1,), (1, 1)]
    Wb = rng(30).standard_normal((fi + 1, fo))
    x = rng(31).standard_normal((S, fi + 1, N))
    x[:, fi] = 0.0
    x[0, fi] = 1.0
    z, y = np.zeros((S, fo, N)), np.zeros((S, fo + 1, N))
    k = dk.dense_streams_kernel("tanh", streams, cond=cond)
    assert k is dk.dense_streams_kernel(act.tanh, streams, cond=cond)
    args = [Wb.T, *x, *z, z.reshape(S, fo * N), y.reshape(S, (fo + 1) * N)]
    if cond:
        xc = rng(32).standard_normal((fi + 1, M))
        xc[fi] = 1.0
        zc, yc = np.zeros((fo, M)), np.zeros((fo + 1, M))
        args += [xc, zc, yc]
    k(*args)
    W, b = Wb[:fi], Wb[fi]
    a = np.einsum("io,sin->son", W, x[:, :fi])
    a[0] += b[:, None]
    t = np.tanh(a[0])
    d = 1 - t * t
    want = np.stack([t, d * a[1], d * a[2], d * a[3] - 2 * t * d * a[2] ** 2])
    np.testing.assert_allclose(y[:, :fo], want, rtol=1e-11, atol=1e-13)
    assert (y[0, fo] == 1).all() and (y[1:, fo] == 0).all()
    if cond:
        np.testing.assert_allclose(yc[:fo], np.tanh(W.T @ xc[:fi] + b[:, None]), rtol=1e-12, atol=1e-14)
        assert (yc[fo] == 1).all()
