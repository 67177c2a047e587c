"""Every math function of API.md §3 (``ds.*`` and ``math.*`` names, builtins),
against NumPy: in float64 and float32, on arrays and constant-folded, on
scalars and vectors."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

import difsci as ds

from conftest import assert_close

# name -> (numpy reference, domain of the test inputs)
UNARY = {
    "sin": (np.sin, "any"), "cos": (np.cos, "any"), "tan": (np.tan, "any"),
    "asin": (np.arcsin, "unit"), "acos": (np.arccos, "unit"), "atan": (np.arctan, "any"),
    "sinh": (np.sinh, "any"), "cosh": (np.cosh, "any"), "tanh": (np.tanh, "any"),
    "exp": (np.exp, "any"), "exp2": (np.exp2, "any"), "expm1": (np.expm1, "any"),
    "log": (np.log, "pos"), "log1p": (np.log1p, "unit"), "log2": (np.log2, "pos"), "log10": (np.log10, "pos"),
    "sqrt": (np.sqrt, "pos"), "cbrt": (np.cbrt, "any"), "erf": (special.erf, "any"), "erfc": (special.erfc, "any"),
    "abs": (np.abs, "any"), "sign": (np.sign, "any"), "floor": (np.floor, "any"), "ceil": (np.ceil, "any"),
}
NAMES = list(UNARY)


def inputs(dtype=np.float64, n=64):
    r = np.random.default_rng(0)
    x = r.uniform(-2.5, 2.5, n)
    x[:6] = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0]      # exact ties for sign/floor/ceil
    u = r.uniform(-0.99, 0.99, n)
    p = r.uniform(0.01, 5.0, n)
    return x.astype(dtype), u.astype(dtype), p.astype(dtype)


@ds.kernel
def k_unary_ds(x, u, p, out):
    for i in range(x.shape[0]):
        out[i, 0] = ds.sin(x[i])
        out[i, 1] = ds.cos(x[i])
        out[i, 2] = ds.tan(x[i])
        out[i, 3] = ds.asin(u[i])
        out[i, 4] = ds.acos(u[i])
        out[i, 5] = ds.atan(x[i])
        out[i, 6] = ds.sinh(x[i])
        out[i, 7] = ds.cosh(x[i])
        out[i, 8] = ds.tanh(x[i])
        out[i, 9] = ds.exp(x[i])
        out[i, 10] = ds.exp2(x[i])
        out[i, 11] = ds.expm1(x[i])
        out[i, 12] = ds.log(p[i])
        out[i, 13] = ds.log1p(u[i])
        out[i, 14] = ds.log2(p[i])
        out[i, 15] = ds.log10(p[i])
        out[i, 16] = ds.sqrt(p[i])
        out[i, 17] = ds.cbrt(x[i])
        out[i, 18] = ds.erf(x[i])
        out[i, 19] = ds.erfc(x[i])
        out[i, 20] = ds.abs(x[i])
        out[i, 21] = ds.sign(x[i])
        out[i, 22] = ds.floor(x[i])
        out[i, 23] = ds.ceil(x[i])


@ds.kernel
def k_unary_math(x, u, p, out):
    for i in range(x.shape[0]):
        out[i, 0] = math.sin(x[i])
        out[i, 1] = math.cos(x[i])
        out[i, 2] = math.tan(x[i])
        out[i, 3] = math.asin(u[i])
        out[i, 4] = math.acos(u[i])
        out[i, 5] = math.atan(x[i])
        out[i, 6] = math.sinh(x[i])
        out[i, 7] = math.cosh(x[i])
        out[i, 8] = math.tanh(x[i])
        out[i, 9] = math.exp(x[i])
        out[i, 10] = math.exp2(x[i])
        out[i, 11] = math.expm1(x[i])
        out[i, 12] = math.log(p[i])
        out[i, 13] = math.log1p(u[i])
        out[i, 14] = math.log2(p[i])
        out[i, 15] = math.log10(p[i])
        out[i, 16] = math.sqrt(p[i])
        out[i, 17] = math.cbrt(x[i])
        out[i, 18] = math.erf(x[i])
        out[i, 19] = math.erfc(x[i])
        out[i, 20] = abs(x[i])
        out[i, 21] = ds.sign(x[i])
        out[i, 22] = math.floor(x[i])
        out[i, 23] = math.ceil(x[i])


def reference(x, u, p):
    arg = {"any": x, "unit": u, "pos": p}
    return np.stack([UNARY[n][0](arg[UNARY[n][1]].astype(np.float64)) for n in NAMES], axis=1)


@pytest.mark.parametrize("kernel", [k_unary_ds, k_unary_math], ids=["ds", "math"])
def test_unary_f64(kernel, backend):
    x, u, p = inputs()
    out = ds.zeros((x.size, len(NAMES)))
    kernel(x, u, p, out)
    want = reference(x, u, p)
    for k, n in enumerate(NAMES):
        np.testing.assert_allclose(out.numpy()[:, k], want[:, k], rtol=1e-13, atol=1e-14, err_msg=n)


def test_unary_f32(backend):
    """float32 inputs compute in float32 (NEP 50) on both backends."""
    x, u, p = inputs(np.float32)
    out = ds.zeros((x.size, len(NAMES)), dtype=np.float32)
    k_unary_ds(x, u, p, out)
    want = reference(x, u, p)
    for k, n in enumerate(NAMES):
        np.testing.assert_allclose(out.numpy()[:, k], want[:, k], rtol=3e-6, atol=3e-7, err_msg=n)
    # exact float32 ops: the results equal NumPy's float32 results
    for k, n in enumerate(["abs", "sign", "floor", "ceil", "sqrt"]):
        col = NAMES.index(n)
        arg = {"any": x, "pos": p}[UNARY[n][1]]
        np.testing.assert_array_equal(out.numpy()[:, col], UNARY[n][0](arg), err_msg=n)


def test_unary_types(py):
    x, u, p = inputs(np.float32, 8)
    fn = k_unary_ds.ir(x, u, p, ds.zeros((8, len(NAMES)), dtype=np.float32))
    ops = [s.value for s in _stores(fn)]
    assert all(o.ty == ds.f32 for o in ops)


def _stores(fn):
    from difsci.lang import ir
    return [s for s in ir.walk_stmts(fn.body) if isinstance(s, ir.Store)]


@ds.kernel
def k_binary(x: ds.f64[:], y: ds.f64[:], c: ds.f64[:], out: ds.f64[:, :]):
    for i in range(x.shape[0]):
        out[i, 0] = ds.atan2(x[i], y[i])
        out[i, 1] = math.atan2(x[i], y[i])
        out[i, 2] = ds.hypot(x[i], y[i])
        out[i, 3] = math.hypot(x[i], y[i])
        out[i, 4] = ds.pow(abs(x[i]), y[i])
        out[i, 5] = math.pow(abs(x[i]), y[i])
        out[i, 6] = abs(x[i]) ** y[i]
        out[i, 7] = ds.min(x[i], y[i])
        out[i, 8] = min(x[i], y[i], 0.5)
        out[i, 9] = ds.max(x[i], y[i])
        out[i, 10] = max(x[i], y[i], -0.5)
        out[i, 11] = ds.clamp(x[i], -0.5, y[i] + 1.0)
        out[i, 12] = ds.select(c[i] > 0.0, x[i], y[i])
        out[i, 13] = math.fabs(x[i])
        out[i, 14] = x[i] ** 2 + x[i] ** 3 + x[i] ** -1
        out[i, 15] = ds.pow(x[i], 2)


@pytest.mark.filterwarnings("ignore:divide by zero")
def test_binary(backend):
    r = np.random.default_rng(1)
    n = 64
    x, y = r.uniform(-2, 2, n), r.uniform(-2, 2, n)
    x[:4] = [0.5, 0.0, -1.0, 1.0]
    y[:4] = [0.5, 0.0, -1.0, -1.0]                    # ties for min/max/clamp, atan2(0, 0)
    c = r.uniform(-1, 1, n)
    out = ds.zeros((n, 16))
    k_binary(x, y, c, out)
    ax = np.abs(x)
    want = np.stack([
        np.arctan2(x, y), np.arctan2(x, y), np.hypot(x, y), np.hypot(x, y), ax ** y, ax ** y, ax ** y,
        np.minimum(x, y), np.minimum(np.minimum(x, y), 0.5), np.maximum(x, y), np.maximum(np.maximum(x, y), -0.5),
        np.minimum(np.maximum(x, -0.5), y + 1.0), np.where(c > 0, x, y), np.abs(x),
        x ** 2 + x ** 3 + np.divide(1, x, where=x != 0, out=np.full(n, np.inf)), x ** 2], axis=1)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-13, atol=1e-14)


@ds.kernel
def k_int_math(a: ds.i64[:], b: ds.i32[:], out: ds.i64[:, :], out32: ds.i32[:, :]):
    for i in range(a.shape[0]):
        out[i, 0] = abs(a[i])
        out[i, 1] = ds.sign(a[i])
        out[i, 2] = min(a[i], 3)
        out[i, 3] = max(a[i], -3, b[i])
        out[i, 4] = ds.clamp(a[i], -2, 2)
        out[i, 5] = a[i] ** 2
        out[i, 6] = ds.select(a[i] > 0, a[i], 7)
        out32[i, 0] = abs(b[i])
        out32[i, 1] = b[i] * 3 // 2
        out32[i, 2] = b[i] % 4
        out32[i, 3] = max(b[i], 1)


def test_integer_math_stays_integer(backend):
    a = np.array([-5, -1, 0, 1, 4, 9], dtype=np.int64)
    b = np.array([-7, 3, 0, -2, 8, 1], dtype=np.int32)
    out = ds.zeros((6, 7), dtype=np.int64)
    out32 = ds.zeros((6, 4), dtype=np.int32)
    k_int_math(a, b, out, out32)
    want = np.stack([np.abs(a), np.sign(a), np.minimum(a, 3), np.maximum(np.maximum(a, -3), b),
                     np.clip(a, -2, 2), a ** 2, np.where(a > 0, a, 7)], axis=1)
    np.testing.assert_array_equal(out.numpy(), want)
    want32 = np.stack([np.abs(b), b * 3 // 2, b % 4, np.maximum(b, 1)], axis=1)
    np.testing.assert_array_equal(out32.numpy(), want32)
    fn = k_int_math.ir(a, b, out, out32)
    assert all(s.value.ty.is_int for s in _stores(fn))


@ds.kernel
def k_folded(out: ds.f64[:]):
    out[0] = ds.sqrt(2.0)
    out[1] = ds.exp2(3.0)
    out[2] = ds.cbrt(-8.0)
    out[3] = ds.sign(-3.0)
    out[4] = ds.floor(-2.5)
    out[5] = ds.ceil(-2.5)
    out[6] = ds.min(1, 2.5)
    out[7] = ds.max(-1.0, -2)
    out[8] = ds.atan2(1.0, -1.0)
    out[9] = math.pi + math.e + math.tau
    out[10] = ds.log(math.e)
    out[11] = ds.abs(-4)
    out[12] = ds.clamp(5.0, 0.0, 1.0)
    out[13] = ds.erf(0.5) + ds.erfc(0.5)
    out[14] = 2.0 ** 0.5
    out[15] = -7.5 % 2.0 + -7.5 // 2.0
    out[16] = ds.sign(0.0)
    out[17] = ds.pow(2, 10)
    out[18] = ds.select(1 > 2, 3.0, 4.0)
    out[19] = ds.hypot(3.0, 4.0)


def test_constant_folding_matches_python(py):
    out = ds.zeros(20)
    k_folded(out)
    want = [math.sqrt(2), 8.0, -2.0, -1.0, -3.0, -2.0, 1.0, -1.0, math.atan2(1, -1), math.pi + math.e + math.tau,
            1.0, 4.0, 1.0, 1.0, 2 ** 0.5, -7.5 % 2.0 + -7.5 // 2.0, 0.0, 1024.0, 4.0, 5.0]
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-15, atol=1e-15)
    code = [ln for ln in k_folded.source.splitlines() if not ln.lstrip().startswith("#")]
    assert not any("math." in ln or "np." in ln for ln in code)   # everything folded


@ds.kernel
def k_inf(out: ds.f64[:]):
    out[0] = math.inf
    out[1] = -math.inf
    out[2] = ds.min(out[0], 3.0)


def test_infinity_constants(backend):
    out = ds.zeros(3)
    k_inf(out)
    np.testing.assert_array_equal(out.numpy(), [np.inf, -np.inf, 3.0])


@ds.kernel
def k_vec_math(p: ds.vec3[:], out: ds.vec3[:, :]):
    for i in range(p.shape[0]):
        v = p[i]
        out[i, 0] = ds.sin(v)
        out[i, 1] = ds.abs(v)
        out[i, 2] = ds.min(v, 0.25)
        out[i, 3] = ds.max(v, ds.vec3(0.0, -0.5, 0.5))
        out[i, 4] = ds.clamp(v, -0.3, 0.3)
        out[i, 5] = ds.select(v.x > 0.0, v, -v) + ds.select(v.y > 0.0, 0.5, v) - ds.select(v.z > 0.0, v, 0.5)
        out[i, 6] = ds.exp(v) * ds.floor(v * 3.0)
        out[i, 7] = v ** 2


def test_vector_math_elementwise(backend):
    v = np.random.default_rng(2).uniform(-1, 1, (32, 3))
    p = ds.array(v, dtype=ds.vec3)
    out = ds.zeros((32, 8), dtype=ds.vec3)
    k_vec_math(p, out)
    want = np.stack([np.sin(v), np.abs(v), np.minimum(v, 0.25), np.maximum(v, [0.0, -0.5, 0.5]), np.clip(v, -0.3, 0.3),
                     np.where(v[:, :1] > 0, v, -v) + np.where(v[:, 1:2] > 0, 0.5, v) - np.where(v[:, 2:] > 0, v, 0.5),
                     np.exp(v) * np.floor(v * 3), v ** 2], axis=1)
    assert_close(out.numpy(), want)


@ds.func
def softplus(x):
    return ds.log1p(ds.exp(-abs(x))) + max(x, 0.0)


def test_math_in_funcs_from_python(py):
    for v in (-3.0, 0.0, 2.5):
        assert_close(softplus(v), np.logaddexp(0.0, v))
    assert_close(softplus(np.float32(1.0)), np.logaddexp(0.0, 1.0), np.float32)


@ds.kernel
def k_special_values(x: ds.f64[:], out: ds.f64[:, :], c: float):
    for i in range(x.shape[0]):
        out[i, 0] = math.sqrt(x[i])
        out[i, 1] = ds.log(x[i] + 1.0)
        out[i, 2] = ds.exp(-x[i] * 1000.0)
        out[i, 3] = 1.0 / ds.sin(0.0)                  # folded: inf
        out[i, 4] = c / ds.min(x[i] * 0.0, 0.0)
        out[i, 5] = x[i] % c
        out[i, 6] = ds.acos(x[i] - 1.0)
        out[i, 7] = ds.cosh(-x[i] * 1000.0)
        out[i, 8] = ds.clamp(x[i], 0.0, 1.0) / 0.0
        out[i, 9] = (-8.0) ** (1.0 / 3.0)             # folded: nan, as NumPy


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_special_values_match_numpy_semantics(backend):
    """nan/inf where Python's math and float arithmetic would raise, on both backends (as numba does)."""
    x = np.array([-1.0, 0.0, 2.0])
    out = ds.zeros((3, 10))
    k_special_values(x, out, 0.0)
    with np.errstate(all="ignore"):
        want = np.stack([np.sqrt(x), np.log(x + 1), np.exp(-x * 1000), np.full(3, np.inf),
                         np.zeros(3) / np.minimum(x * 0.0, 0.0), np.mod(x, 0.0), np.arccos(x - 1),
                         np.cosh(-x * 1000), np.clip(x, 0, 1) / 0.0, np.full(3, np.nan)], axis=1)
    np.testing.assert_array_equal(out.numpy(), want)


@ds.kernel
def k_const_local(x: ds.f64[:], out: ds.f64[:], n: int):
    for i in range(x.shape[0]):
        s = 0.0
        for j in range(n):
            s = s + x[j]
        out[i] = 1.0 / s


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_python_backend_constant_locals_divide_like_numpy(py):
    out = ds.zeros(2)
    k_const_local(np.zeros(2), out, 0)
    np.testing.assert_array_equal(out.numpy(), [np.inf, np.inf])
