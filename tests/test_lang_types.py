"""Types (API.md §3): NumPy 2 promotion (NEP 50) of arrays, weak Python
numbers and numpy scalars; annotations; local type unification; conversion on
store; the values computed really have those types on every backend."""
from __future__ import annotations

import numpy as np
import pytest

import difsci as ds

from conftest import assert_close

DTYPES = [np.float32, np.float64, np.int32, np.int64]
OTHERS = [1, 2.5, True, np.float32(1.5), np.float64(1.5), np.int32(2), np.int64(3)]
F64_CONST = np.float64(0.5)       # a numpy scalar global keeps its type
F32_CONST = np.float32(0.5)
PY_CONST = 0.5                    # a Python float global is weak


@ds.kernel
def k_add(a, b, out):
    for i in range(a.shape[0]):
        r = a[i] + b
        out[i] = r


@ds.kernel
def k_ops(a, b, out):
    for i in range(a.shape[0]):
        p = a[i] * b
        q = a[i] / b
        d = a[i] - b
        out[i] = p + q + d


@ds.kernel
def k_ops_arrays(a, b, out):
    for i in range(a.shape[0]):
        p = a[i] * b[i]
        q = a[i] / b[i]
        out[i] = p + q


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_promotion_matches_numpy(dtype, py):
    a = np.array([3, 5], dtype=dtype)
    for b in OTHERS:
        fn = k_add.ir(a, b, np.zeros(2))
        want = (a[0] + b).dtype
        assert np.dtype(fn.locals["r"].np) == want, (dtype, type(b))
        fn = k_ops.ir(a, b, np.zeros(2))
        for name, op in (("p", np.multiply), ("q", np.true_divide), ("d", np.subtract)):
            if isinstance(b, bool) and name == "d":
                continue     # numpy forbids bool subtraction
            assert np.dtype(fn.locals[name].np) == op(a[0], b).dtype, (dtype, type(b), name)


@pytest.mark.parametrize("da", DTYPES, ids=lambda d: d.__name__)
def test_array_array_promotion(da, py):
    for db in DTYPES:
        a, b = np.ones(2, da), np.ones(2, db)
        fn = k_ops_arrays.ir(a, b, np.zeros(2))
        assert np.dtype(fn.locals["p"].np) == (a * b).dtype
        assert np.dtype(fn.locals["q"].np) == (a / b).dtype


@ds.kernel
def k_f32_arith(x: ds.f32[:], y: ds.f32[:], out: ds.f32[:, :], c: float, n: int):
    for i in range(x.shape[0]):
        out[i, 0] = x[i] * 0.1 + x[i] / 3.0
        out[i, 1] = (x[i] - y[i]) * (x[i] + y[i]) * c
        out[i, 2] = x[i] ** 2 + y[i] * n
        out[i, 3] = ds.sqrt(abs(x[i])) + ds.sin(y[i])
        out[i, 4] = x[i] * F32_CONST + PY_CONST


def test_float32_computed_in_float32(backend):
    """Bit-for-bit the NumPy float32 result: the values really are float32 on both backends."""
    r = np.random.default_rng(0)
    x, y = r.standard_normal(50).astype(np.float32), r.standard_normal(50).astype(np.float32)
    out = ds.zeros((50, 5), dtype=np.float32)
    k_f32_arith(x, y, out, 0.7, 3)
    f = np.float32
    want = np.stack([x * f(0.1) + x / f(3.0), (x - y) * (x + y) * f(0.7), x ** 2 + y * f(3),
                     np.sqrt(np.abs(x)) + np.sin(y), x * f(0.5) + f(0.5)], axis=1)
    np.testing.assert_array_equal(out.numpy()[:, :3], want[:, :3])
    np.testing.assert_array_equal(out.numpy()[:, 4], want[:, 4])
    assert_close(out.numpy()[:, 3], want[:, 3], np.float32)   # libm sin may differ by an ulp


@ds.kernel
def k_numpy_scalars(x: ds.f32[:], out: ds.f64[:], out32: ds.f32[:]):
    for i in range(x.shape[0]):
        out[i] = x[i] * F64_CONST       # np.float64 global: promotes to f64
        out32[i] = x[i] * PY_CONST      # Python float global: weak, stays f32


def test_numpy_scalar_globals_keep_type(py):
    x = np.array([0.1, 1 / 3], dtype=np.float32)
    out, out32 = ds.zeros(2), ds.zeros(2, dtype=np.float32)
    fn = k_numpy_scalars.ir(x, out, out32)
    vals = [s.value for s in _stores(fn)]
    assert vals[0].ty == ds.f64
    assert vals[1].ty == ds.f32
    k_numpy_scalars(x, out, out32)
    np.testing.assert_array_equal(out.numpy(), x.astype(np.float64) * 0.5)


@ds.kernel
def k_scalar_annotations(x: ds.f32[:], a: ds.f64, b: float, k: ds.i32, flag: bool, out: ds.f64[:]):
    for i in range(x.shape[0]):
        u = x[i] * a          # annotated ds.f64: forces double
        v = x[i] * b          # annotated float: weak
        w = k * 2             # ds.i32 stays i32
        out[i] = u + v + w + (1.0 if flag else 0.0)


def test_scalar_annotations(backend):
    x = np.array([0.5, 1.5], dtype=np.float32)
    out = ds.zeros(2)
    fn = k_scalar_annotations.ir(x, 0.1, 0.1, 3, True, out)
    assert fn.locals["u"] == ds.f64 and fn.locals["v"] == ds.f32 and fn.locals["w"] == ds.i32
    k_scalar_annotations(x, 0.1, 0.1, 3, True, out)
    want = x.astype(np.float64) * 0.1 + (x * np.float32(0.1)).astype(np.float64) + 6 + 1
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-15)


@ds.kernel
def k_unify(x: ds.f32[:], n: ds.i32[:], out: ds.f64[:, :]):
    for i in range(x.shape[0]):
        s = 0                 # then a float: s is a float
        s = s + 0.5
        t = 0                 # then f32 values: t is f32
        for j in range(3):
            t = t + x[i]
        k = 0                 # stays an integer
        for j in range(4):
            k = k + 1
        m = 0                 # int then i32 element: i32
        m = n[i]
        v = 1
        if x[i] > 0.0:
            v = 2.5           # assigned in a branch only: still a float everywhere
        out[i, 0] = s
        out[i, 1] = t
        out[i, 2] = k
        out[i, 3] = m
        out[i, 4] = v


def test_local_type_unification(backend):
    x = np.array([1.25, -2.0], dtype=np.float32)
    n = np.array([7, -9], dtype=np.int32)
    out = ds.zeros((2, 5))
    fn = k_unify.ir(x, n, out)
    L = fn.locals
    assert L["s"].is_float and L["t"] == ds.f32 and L["k"].is_int and L["m"] == ds.i32 and L["v"].is_float
    k_unify(x, n, out)
    assert_close(out.numpy(), [[0.5, 3.75, 4, 7, 2.5], [0.5, -6.0, 4, -9, 1.0]])


@ds.kernel
def k_store_convert(x: ds.f64[:], oi: ds.i64[:], oi32: ds.i32[:], of: ds.f32[:], acc: ds.i64[:]):
    for i in range(x.shape[0]):
        oi[i] = x[i]                  # float -> int store truncates, as numpy does
        oi32[i] = x[i] * 2.0
        of[i] = x[i] / 3.0
        acc[0] += x[i]                # accumulation converts the value


def test_store_converts_to_array_dtype(backend):
    x = np.array([2.7, -2.7, 0.4, 5.0])
    oi, oi32, of = ds.zeros(4, dtype=np.int64), ds.zeros(4, dtype=np.int32), ds.zeros(4, dtype=np.float32)
    acc = ds.zeros(1, dtype=np.int64)
    k_store_convert(x, oi, oi32, of, acc)
    ref = np.zeros(4, np.int64)
    ref[:] = x
    np.testing.assert_array_equal(oi.numpy(), ref)
    np.testing.assert_array_equal(oi32.numpy(), (x * 2).astype(np.int32))
    np.testing.assert_array_equal(of.numpy(), (x / 3).astype(np.float32))
    assert acc.numpy()[0] == sum(int(v) for v in x)
    assert oi32.numpy().dtype == np.int32 and of.numpy().dtype == np.float32


@ds.kernel
def k_int_div(a: ds.i32[:], b: ds.i32[:], q: ds.f64[:], fq: ds.i32[:]):
    for i in range(a.shape[0]):
        q[i] = a[i] / b[i]            # true division of ints gives a float
        fq[i] = a[i] // b[i] + 1 // 2 + 7 % 3


def test_integer_division(py):
    a = np.array([7, -7, 1], dtype=np.int32)
    b = np.array([2, 2, 3], dtype=np.int32)
    q, fq = ds.zeros(3), ds.zeros(3, dtype=np.int32)
    k_int_div(a, b, q, fq)
    assert_close(q.numpy(), a / b)
    np.testing.assert_array_equal(fq.numpy(), a // b + 0 + 1)
    fn = k_int_div.ir(a, b, q, fq)
    assert [s.value.ty for s in _stores(fn)][1] == ds.i32


@ds.kernel
def k_unannotated_scalar(x, s, out):
    for i in range(x.shape[0]):
        r = x[i] * s
        out[i] = r


def test_unannotated_scalars_specialise(backend):
    x = np.array([1.5, -2.0], np.float32)
    for s in (2, 2.5, np.float64(2.5), np.int32(2), np.float32(0.1)):
        out = np.zeros(2, np.float64)
        fn = k_unannotated_scalar.ir(x, s, out)
        assert np.dtype(fn.locals["r"].np) == (x[0] * s).dtype
        k_unannotated_scalar(x, s, out)
        np.testing.assert_array_equal(out, (x * s).astype(np.float64))


def _stores(fn):
    from difsci.lang import ir
    return [s for s in ir.walk_stmts(fn.body) if isinstance(s, ir.Store)]


def test_type_objects():
    assert ds.f32[:, :].ndim == 2 and ds.f64[()].ndim == 0
    assert ds.vec3[:].elem == ds.vec3
    assert ds.f32(1.5) == np.float32(1.5) and isinstance(ds.f32(1.5), np.float32)
    assert isinstance(ds.i64(3), np.int64)
    assert ds.vec(3, ds.f32) == ds.vec3f and ds.mat(2, 2, np.float32) == ds.mat2f
    with pytest.raises(TypeError):
        ds.f64[1:2]
