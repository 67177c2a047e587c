"""ds.grad / ds.jvp / ds.hessian on funcs (API.md §6): first to third order,
every composition order, funcs with loops/branches/while/vectors, transforms
inside kernels and differentiated again through the Tape, funcs called from
Python with numpy vectors; dot-product and Taylor tests."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

import difsci as ds

from gradcheck import (backend_all, dot_product_check, fd_func_grad, func_grad_check, py_backend,  # noqa: F401
                       tape_check, taylor_rates, using)

RNG = np.random.default_rng(11)
X = sp.Symbol("x", real=True)


# ---------------------------------------------------------------- scalars
@ds.func
def f(x: float) -> float:
    return ds.sin(x) * ds.exp(0.5 * x) + x * x * x / (1.0 + x * x)


F_SYM = sp.sin(X) * sp.exp(X / 2) + X ** 3 / (1 + X ** 2)


def _sym(expr, order, x):
    return float(sp.diff(expr, X, order).subs(X, x))


@pytest.mark.parametrize("x", [0.3, -1.2, 2.0])
def test_first_second_third_order(x, py_backend):
    g1 = ds.grad(f)
    g2 = ds.grad(ds.grad(f))
    g3 = ds.grad(ds.grad(ds.grad(f)))
    assert math.isclose(g1(x), _sym(F_SYM, 1, x), rel_tol=1e-12)
    assert math.isclose(g2(x), _sym(F_SYM, 2, x), rel_tol=1e-11)
    assert math.isclose(g3(x), _sym(F_SYM, 3, x), rel_tol=1e-10)


@pytest.mark.parametrize("x", [0.3, -1.2])
def test_mixed_orders(x, py_backend):
    d2 = _sym(F_SYM, 2, x)
    d3 = _sym(F_SYM, 3, x)
    # forward over reverse, reverse over forward, forward over forward
    v, t = ds.jvp(ds.grad(f))(x, 1.0)
    assert math.isclose(v, _sym(F_SYM, 1, x), rel_tol=1e-12) and math.isclose(t, d2, rel_tol=1e-11)
    v, t = ds.jvp(ds.jvp(f))(x, 1.0, 1.0, 0.0)
    assert math.isclose(t[1], d2, rel_tol=1e-11)
    assert math.isclose(ds.grad(tangent_of_f)(x), d2, rel_tol=1e-11)
    v, t = ds.jvp(ds.grad(ds.grad(f)))(x, 1.0)
    assert math.isclose(t, d3, rel_tol=1e-10)
    assert math.isclose(ds.grad(ds.grad(tangent_of_f))(x), d3, rel_tol=1e-10)
    assert math.isclose(ds.hessian(f)(x), d2, rel_tol=1e-11)
    assert math.isclose(ds.grad(ds.hessian(f))(x), d3, rel_tol=1e-10)


@ds.func
def tangent_of_f(x: float) -> float:
    v, t = ds.jvp(f)(x, 1.0)
    return t


def test_transformed_funcs_have_source(py_backend):
    g = ds.grad(ds.grad(f))
    g(0.5)
    src = g.source
    assert "def " in src and "return" in src
    compile(src, "<grad source>", "exec")


# ----------------------------------------------- funcs with control flow
@ds.func
def looped(x: float, a: float) -> float:
    s = x
    for j in range(12):
        s = s * a + ds.sin(s) * 0.1
        if s > 3.0:
            s = s - 1.0
    k = 0
    while s > 0.5 and k < 20:
        s = s * 0.8
        k += 1
    return s * x


@ds.func
def early(x: float, n: int) -> float:
    s = 0.0
    for j in range(n):
        s = s + x * j
        if s > 4.0:
            return s * s
        if j == 3:
            continue
        s = s * 1.1
    return -s


@pytest.mark.parametrize("args", [(0.7, 0.9), (1.5, 1.1), (-0.4, 0.95)])
def test_grad_of_funcs_with_loops_branches_while(args, py_backend):
    for k in range(2):
        func_grad_check(looped, list(args), k)
    # second order against finite differences of the first
    for k in range(2):
        h = ds.grad(ds.grad(looped, k), k)
        fd = fd_func_grad(ds.grad(looped, k), list(args), k)
        assert math.isclose(h(*args), float(fd), rel_tol=1e-6, abs_tol=1e-9)


@pytest.mark.parametrize("x", [0.2, 0.9, 1.7])
def test_grad_with_early_returns(x, py_backend):
    func_grad_check(early, [x, 7], 0)
    g2 = ds.grad(ds.grad(early))
    assert math.isclose(g2(x, 7), float(fd_func_grad(ds.grad(early), [x, 7], 0)), rel_tol=1e-6, abs_tol=1e-8)


def test_dot_product_and_taylor_scalar(py_backend):
    dot_product_check(looped, [0.7, 0.9])
    dot_product_check(early, [0.6, 6])
    g = ds.grad(looped)(0.7, 0.9)
    rates = taylor_rates(lambda x: looped(float(x[0]), 0.9), np.array([0.7]), np.array([g]), np.array([1.0]))
    assert np.all(rates > 1.8), rates


# ---------------------------------------------------------------- vectors
@ds.func
def energy(p: ds.vec3, q: ds.vec3) -> float:
    d = p - q
    r = ds.norm(d)
    e = 0.0
    for k in range(3):
        e = e + ds.exp(-p[k] * q[k]) * 0.1
    return (r - 1.0) ** 2 + ds.dot(p, ds.cross(q, d)) + e


@ds.func
def mat_fn(m: ds.mat2) -> float:
    R, S = ds.polar_decompose2d(m)
    return ds.det(ds.inverse(m) + S) + ds.norm(R @ m) + ds.trace(m @ m.T)


@ds.func
def vec_out(p: ds.vec3, s: float) -> ds.vec3:
    return ds.normalize(p) * s + ds.cross(p, ds.vec3(s, 1.0, -s))


def test_grad_of_vector_args_from_python(py_backend):
    p, q = RNG.uniform(-1, 1, 3), RNG.uniform(-1, 1, 3)
    g = func_grad_check(energy, [p, q], 0)
    assert g.shape == (3,)
    func_grad_check(energy, [p, q], 1)
    m = np.array([[1.2, 0.3], [-0.2, 0.8]])
    gm = func_grad_check(mat_fn, [m], 0)
    assert gm.shape == (2, 2)
    # vector-valued funcs called from Python give numpy vectors
    out = vec_out(p, 0.5)
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    np.testing.assert_allclose(out, p / np.linalg.norm(p) * 0.5 + np.cross(p, [0.5, 1.0, -0.5]), rtol=1e-12)


def test_hessian_vs_finite_differences_of_gradient(py_backend):
    p, q = RNG.uniform(-1, 1, 3), RNG.uniform(-1, 1, 3)
    H = ds.hessian(energy, 0)(p, q)
    assert H.shape == (3, 3)
    gfun = ds.grad(energy, 0)
    eps = 1e-6
    fd = np.zeros((3, 3))
    for k in range(3):
        e = np.zeros(3)
        e[k] = eps
        fd[:, k] = (gfun(p + e, q) - gfun(p - e, q)) / (2 * eps)
    np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-12)
    Hq = ds.hessian(energy, 1)(p, q)
    np.testing.assert_allclose(Hq, Hq.T, rtol=1e-12, atol=1e-12)
    m = np.array([[1.2, 0.3], [-0.2, 0.8]])
    Hm = ds.hessian(mat_fn)(m)
    assert Hm.shape == (4, 4)
    gm = ds.grad(mat_fn)
    fdm = np.zeros((4, 4))
    for k in range(4):
        e = np.zeros(4)
        e[k] = eps
        fdm[:, k] = ((gm(m + e.reshape(2, 2)) - gm(m - e.reshape(2, 2))) / (2 * eps)).ravel()
    np.testing.assert_allclose(Hm, fdm, rtol=1e-5, atol=1e-7)


def test_dot_product_vector_funcs(py_backend):
    p, q = RNG.uniform(-1, 1, 3), RNG.uniform(-1, 1, 3)
    dot_product_check(energy, [p, q])
    dot_product_check(vec_out, [p, 0.7])
    dot_product_check(mat_fn, [np.array([[1.2, 0.3], [-0.2, 0.8]])])


def test_jvp_of_vector_func_matches_fd(py_backend):
    p = RNG.uniform(-1, 1, 3)
    v = RNG.uniform(-1, 1, 3)
    val, tan = ds.jvp(vec_out)(p, 0.7, v, 0.3)
    eps = 1e-6
    fd = (vec_out(p + eps * v, 0.7 + eps * 0.3) - vec_out(p - eps * v, 0.7 - eps * 0.3)) / (2 * eps)
    np.testing.assert_allclose(tan, fd, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(val, vec_out(p, 0.7), rtol=1e-14)


# ------------------------------------------------- transforms inside kernels
@ds.func
def g(p: ds.vec2) -> float:
    return ds.sin(p.x) * p.y * p.y + ds.exp(0.3 * p.x * p.y)


def _g_np(p):
    return math.sin(p[0]) * p[1] ** 2 + math.exp(0.3 * p[0] * p[1])


@ds.kernel
def grad_field(p: ds.vec2[:], out: ds.vec2[:], hess: ds.mat2[:]):
    for i in range(p.shape[0]):
        out[i] = ds.grad(g)(p[i])
        hess[i] = ds.hessian(g)(p[i])


def test_transforms_inside_kernel_body(backend_all):
    pts = RNG.uniform(-1, 1, (4, 2))
    p = ds.array(pts, dtype=ds.vec2)
    out = ds.zeros(4, dtype=ds.vec2)
    hess = ds.zeros(4, dtype=ds.mat2)
    grad_field(p, out, hess)
    with using("python"):
        for i in range(4):
            np.testing.assert_allclose(out.numpy()[i], fd_func_grad(g, [pts[i]], 0), rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(hess.numpy()[i], ds.hessian(g)(pts[i]), rtol=1e-12, atol=1e-12)


@ds.func
def h1(x: float) -> float:
    return ds.sin(2.0 * x) * x + ds.exp(-x * x)


H1 = sp.sin(2 * X) * X + sp.exp(-X ** 2)
d2h = ds.grad(ds.grad(h1))


@ds.kernel
def second_derivs(x: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        y[i] = d2h(x[i]) + ds.grad(h1)(x[i]) * x[i]


@ds.kernel
def total(y: ds.f64[:], out: ds.f64[()]):
    for i in range(y.shape[0]):
        out[None] += y[i]


def test_third_order_through_the_tape(backend_all):
    xs = np.array([0.3, -0.7, 1.1])
    x = ds.array(xs, requires_grad=True)
    y = ds.zeros(3, requires_grad=True)
    out = ds.zeros((), requires_grad=True)
    with ds.Tape() as tape:
        second_derivs(x, y)
        total(y, out)
    tape.backward(out)
    # d/dx [h''(x) + h'(x) x] = h'''(x) + h''(x) x + h'(x)
    want = [_sym(H1, 3, v) + _sym(H1, 2, v) * v + _sym(H1, 1, v) for v in xs]
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-10)
    np.testing.assert_allclose(y.numpy(), [_sym(H1, 2, v) + _sym(H1, 1, v) * v for v in xs], rtol=1e-11)


@ds.kernel
def hessian_energy(p: ds.vec2[:], out: ds.f64[()]):
    for i in range(p.shape[0]):
        H = ds.hessian(g)(p[i])
        out[None] += ds.det(H) + H[0, 1] * p[i].x


def test_kernel_with_hessian_differentiated_through_tape(py_backend):
    def build(p):
        out = ds.zeros((), requires_grad=True)
        hessian_energy(p, out)
        return out
    tape_check(build, {"p": RNG.uniform(-1, 1, (3, 2))}, dtypes={"p": ds.vec2}, rtol=1e-6)


# ------------------------------------------------- funcs called from Python
def test_funcs_called_from_python_with_numpy(py_backend):
    p = RNG.uniform(-1, 1, 2)
    assert math.isclose(g(p), _g_np(p), rel_tol=1e-14)
    gp = ds.grad(g)(p)
    np.testing.assert_allclose(gp, fd_func_grad(_g_np, [p], 0), rtol=1e-7)
    val, tan = ds.jvp(g)(p, np.array([1.0, 0.0]))
    assert math.isclose(tan, gp[0], rel_tol=1e-12)
    assert math.isclose(g([0.2, 0.4]), _g_np([0.2, 0.4]), rel_tol=1e-14)   # lists work as vectors too


def test_funcs_called_from_python_on_cpu():
    p = RNG.uniform(-1, 1, 2)
    with using("cpu"):
        gp = ds.grad(g)(p)
        H = ds.hessian(g)(p)
    np.testing.assert_allclose(gp, fd_func_grad(_g_np, [p], 0), rtol=1e-7)
    with using("python"):
        np.testing.assert_allclose(H, ds.hessian(g)(p), rtol=1e-13)


@ds.func
def two_args(x: float, y: float) -> float:
    return x * x * y + ds.sin(x * y)


def test_argnums_tuple(py_backend):
    gx, gy = ds.grad(two_args, (0, 1))(0.4, 1.3)
    assert math.isclose(gx, 2 * 0.4 * 1.3 + math.cos(0.52) * 1.3, rel_tol=1e-12)
    assert math.isclose(gy, 0.16 + math.cos(0.52) * 0.4, rel_tol=1e-12)
    # mixed partial both ways round
    dxy = ds.grad(ds.grad(two_args, 0), 1)(0.4, 1.3)
    dyx = ds.grad(ds.grad(two_args, 1), 0)(0.4, 1.3)
    assert math.isclose(dxy, dyx, rel_tol=1e-12)
    assert math.isclose(dxy, 2 * 0.4 + math.cos(0.52) - math.sin(0.52) * 0.52, rel_tol=1e-12)


# ------------------------------------------------- custom derivative rules
@ds.func
def softplus(x: float) -> float:
    return ds.log(1.0 + ds.exp(x))


@softplus.defvjp
def softplus_vjp(x: float, g: float) -> float:
    return 2.0 * g / (1.0 + ds.exp(-x))     # twice the true derivative: shows that the rule is used


@ds.func
def scaled_mul(x: float, y: float) -> float:
    return x * y


@scaled_mul.defjvp
def scaled_mul_jvp(x: float, y: float, dx: float, dy: float) -> float:
    return 3.0 * (dx * y + x * dy)          # three times the true tangent


@ds.func
def uses_rules(x: float) -> float:
    s = 0.0
    for j in range(3):
        s = s + softplus(x * j) * 0.5 + scaled_mul(s, x)
    return s


def _sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_custom_vjp_rule_used_by_grad_jvp_hessian(py_backend):
    x = 0.3
    assert math.isclose(ds.grad(softplus)(x), 2 * _sig(x), rel_tol=1e-14)
    # forward mode from the vjp rule (no jvp rule given)
    assert math.isclose(ds.jvp(softplus)(x, 1.0)[1], 2 * _sig(x), rel_tol=1e-14)
    assert math.isclose(ds.jvp(softplus)(x, 1.0)[0], math.log(1 + math.exp(x)), rel_tol=1e-14)
    # higher order differentiates the rule
    d2 = 2 * _sig(x) * (1 - _sig(x))
    assert math.isclose(ds.grad(ds.grad(softplus))(x), d2, rel_tol=1e-12)
    assert math.isclose(ds.hessian(softplus)(x), d2, rel_tol=1e-12)


def test_custom_jvp_rule_used_by_jvp_and_grad(py_backend):
    assert ds.jvp(scaled_mul)(0.3, 2.0, 1.0, 0.0) == (pytest.approx(0.6), pytest.approx(6.0))
    # reverse mode from the jvp rule (no vjp rule given)
    assert math.isclose(ds.grad(scaled_mul, 0)(0.3, 2.0), 6.0, rel_tol=1e-14)
    assert math.isclose(ds.grad(scaled_mul, 1)(0.3, 2.0), 0.9, rel_tol=1e-14)


def test_custom_rules_inside_other_funcs(py_backend):
    def want(x):
        s, ds_dx = 0.0, 0.0
        for j in range(3):
            # d/dx [s + 0.5 softplus(x j) + s x] with both rules' factors
            ds_dx = ds_dx + 0.5 * 2 * _sig(x * j) * j + 3.0 * (ds_dx * x + s)
            s = s + math.log(1 + math.exp(x * j)) * 0.5 + s * x
        return ds_dx
    for x in (0.3, -0.8):
        assert math.isclose(ds.grad(uses_rules)(x), want(x), rel_tol=1e-12)
        assert math.isclose(ds.jvp(uses_rules)(x, 1.0)[1], want(x), rel_tol=1e-12)


@ds.func
def rot(p: ds.vec2, a: float) -> ds.vec2:
    c = ds.cos(a)
    s = ds.sin(a)
    return ds.vec2(c * p.x - s * p.y, s * p.x + c * p.y)


@rot.defvjp
def rot_vjp(p: ds.vec2, a: float, g: ds.vec2):
    c = ds.cos(a)
    s = ds.sin(a)
    gp = ds.vec2(c * g.x + s * g.y, -s * g.x + c * g.y)
    ga = g.x * (-s * p.x - c * p.y) + g.y * (c * p.x - s * p.y)
    return gp, ga


@ds.func
def rot_energy(p: ds.vec2, a: float) -> float:
    q = rot(p, a * a)
    return q.x * q.x * 0.5 + ds.sin(q.y)


def test_custom_vjp_rule_with_vectors_and_tuples(py_backend):
    p = np.array([0.4, -0.7])
    func_grad_check(rot_energy, [p, 0.8], 0)       # a correct rule: finite differences agree
    func_grad_check(rot_energy, [p, 0.8], 1)
    dot_product_check(rot, [p, 0.8])                # jvp from the vjp rule vs the vjp rule


@ds.kernel
def rule_kernel(x: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        y[i] = softplus(x[i]) + scaled_mul(x[i], 2.0)


def test_custom_rules_through_the_tape(backend_all):
    x = ds.array(np.array([0.3, -0.5, 1.2]), requires_grad=True)
    y = ds.zeros(3, requires_grad=True)
    with ds.Tape() as tape:
        rule_kernel(x, y)
    tape.backward(y, np.ones(3))
    want = [2 * _sig(v) + 6.0 for v in x.numpy()]
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-13)
    # the primal runs the func's own body
    np.testing.assert_allclose(y.numpy(), np.log1p(np.exp(x.numpy())) + 2 * x.numpy(), rtol=1e-13)


@ds.func
def bad_rule_target(x: float, y: float) -> float:
    return x * y


@bad_rule_target.defvjp
def bad_rule(x: float, y: float, g: float) -> float:
    return g * y                       # two arguments, one adjoint: wrong


def test_custom_rule_of_wrong_shape_raises(py_backend):
    with pytest.raises(ds.AutodiffError, match="vjp rule of `bad_rule_target`"):
        ds.grad(bad_rule_target)(0.3, 0.4)


@ds.func
def nested_whiles(x: float, n: int) -> float:
    s = x
    k = 0
    while k < n:
        j = 0
        while j < k:
            s = s * 0.9 + ds.sin(s) * 0.1
            j += 1
        k += 1
    return s


@pytest.mark.parametrize("x", [0.3, 1.7])
def test_nested_while_loops_first_and_second_order(x, py_backend):
    func_grad_check(nested_whiles, [x, 4], 0)
    g2 = ds.grad(ds.grad(nested_whiles))(x, 4)
    assert math.isclose(g2, float(fd_func_grad(ds.grad(nested_whiles), [x, 4], 0)), rel_tol=1e-6)
