"""Bad input (API.md §9): malformed kernels raise ``ds.CompileError`` with the
user's file:line, the source line and a caret under the offending span; wrong
launch arguments raise TypeError/ValueError naming the kernel and the
parameter.  In every case nothing runs: no output array is modified."""
from __future__ import annotations

import os

import numpy as np
import pytest

import difsci as ds

from conftest import cuda_available, snapshot, unchanged

HERE = os.path.abspath(__file__)
with open(HERE) as _f:
    SOURCE_LINES = _f.read().splitlines()


def plain_python(v):
    return v


@ds.func
def add2(a, b):
    return a + b


@ds.func
def mixed_returns(a):
    if a > 0.0:
        return 1.0
    return ds.vec2(1.0, 2.0)


@ds.func
def takes_array(grid: ds.f64[:], i: int):
    return grid[i]


@ds.func
def factorial(n):
    if n <= 1:
        return 1
    return n * factorial(n - 1)


# ============================================================ malformed kernels
# Each kernel writes `out` before its faulty line, so a half-run would show.
@ds.kernel
def e_unknown_name(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = 1.0
        out[i] = undefined_thing * 2.0  # noqa: F821


@ds.kernel
def e_with(x: ds.f64[:], out: ds.f64[:]):
    out[0] = 1.0
    with open("f") as fh:  # noqa: F841
        out[0] = 2.0


@ds.kernel
def e_try(x: ds.f64[:], out: ds.f64[:]):
    out[0] = 1.0
    try:
        out[0] = 2.0
    except Exception:
        pass


@ds.kernel
def e_return_value(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = 1.0
    return out


@ds.kernel
def e_break_parallel(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = 1.0
        if x[i] > 0.0:
            break


@ds.kernel
def e_range_step(x: ds.f64[:], out: ds.f64[:]):
    for i in range(0, x.shape[0], 2):
        out[i] = 1.0


@ds.kernel
def e_float_index(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i * 0.5] = 1.0


@ds.kernel
def e_index_count(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = x[i, 0]


@ds.kernel
def e_vector_then_scalar(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        v = ds.vec2(1.0, 2.0)
        out[i] = v.x
        v = 3.0


@ds.kernel
def e_python_call(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = plain_python(x[i])


@ds.kernel
def e_numpy_call(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = np.sum(x)


@ds.kernel
def e_keywords(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = add2(x[i], b=1.0)


@ds.kernel
def e_serial_nested(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        for t in ds.serial(range(3)):
            out[i] = 1.0


@ds.kernel
def e_shapes(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        v = ds.vec2(1.0, 2.0) + ds.vec3(1.0, 2.0, 3.0)
        out[i] = v.x


@ds.kernel
def e_store_vector(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = ds.vec2(x[i], 2.0)


@ds.kernel
def e_tuple_local(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        t = (1.0, 2.0)
        out[i] = t[0]


@ds.kernel
def e_unpack_count(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        a, b = ds.vec3(1.0, 2.0, 3.0)
        out[i] = a


@ds.kernel
def e_func_returns(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = mixed_returns(x[i])


@ds.kernel
def e_loop_over_array(x: ds.f64[:], out: ds.f64[:]):
    for v in x:
        out[0] = v


@ds.kernel
def e_lambda(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        g = lambda t: t  # noqa: E731
        out[i] = g(x[i])


@ds.kernel
def e_list_comprehension(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = sum([x[j] for j in range(3)])


@ds.kernel
def e_string(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = len("hello")


@ds.kernel
def e_slice(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = x[1:3]


@ds.kernel
def e_array_attribute(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = x.size


@ds.kernel
def e_vector_compare(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        if ds.vec2(x[i], 2.0) < ds.vec2(0.0, 1.0):
            out[i] = 1.0


@ds.kernel
def e_identity_runtime(x: ds.f64[:], out: ds.f64[:], n: int):
    for i in range(x.shape[0]):
        M = ds.identity(n)
        out[i] = M[0, 0]


@ds.kernel
def e_func_arity(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = add2(x[i])


@ds.kernel
def e_math_arity(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = ds.sin(x[i], 2.0)


@ds.kernel
def e_cross_4d(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = ds.cross(ds.vec4(1.0), ds.vec4(x[i])).x


@ds.kernel
def e_inverse_nonsquare(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = ds.inverse(ds.mat(2, 3, ds.f64)(1.0, 2.0, 3.0, 4.0, 5.0, x[i]))[0, 0]


@ds.kernel
def e_component_range(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        v = ds.vec2(1.0, 2.0)
        out[i] = v[2]


@ds.kernel
def e_zero_d_index(x: ds.f64[:], out: ds.f64[()]):
    out[0] = x[0]


@ds.kernel
def e_parallel_local_after(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        y = x[i]
    out[0] = y


@ds.kernel
def e_parallel_assigns_outer(x: ds.f64[:], out: ds.f64[:]):
    s = 0.0
    for i in range(x.shape[0]):
        s = s + x[i]
    out[0] = s


@ds.kernel
def e_assert(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        assert x[i] > 0


@ds.kernel
def e_invert(x: ds.i64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = ~x[i]


@ds.kernel
def e_is_none(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        if x[i] is None:
            out[i] = 1.0


@ds.kernel
def e_array_func_vector(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = takes_array(ds.vec2(1.0, 2.0), 0)


@ds.kernel
def e_recursion(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = factorial(3)


@ds.kernel
def e_kernel_call(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        e_recursion(x, out)


@ds.kernel
def e_minmax_shapes(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = ds.min(ds.vec2(x[i], 2.0), ds.vec3(0.0, 1.0, 2.0)).x


@ds.kernel
def e_transpose_vector(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = ds.transpose(ds.vec2(x[i], 2.0))[0, 0]


@ds.kernel
def e_vec_matmul_shapes(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = (ds.vec3(x[i], 2.0, 3.0) @ ds.mat2(1.0)).x


@ds.kernel
def e_outer_matrix(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = ds.outer(ds.vec2(x[i], 2.0), ds.mat2(1.0))[0, 0]


def _x(kernel):
    return np.arange(1.0, 4.0, dtype=np.int64 if kernel is e_invert else np.float64)


# (kernel, text of the offending line, words the message must contain)
COMPILE_ERRORS = [
    (e_unknown_name, "undefined_thing * 2.0", ["unknown name", "undefined_thing"]),
    (e_with, 'with open("f") as fh:', ["With"]),
    (e_try, "try:", ["Try"]),
    (e_return_value, "return out", ["cannot return"]),
    (e_break_parallel, "            break", ["break"]),
    (e_range_step, "range(0, x.shape[0], 2)", ["step"]),
    (e_float_index, "out[i * 0.5] = 1.0", ["integer"]),
    (e_index_count, "out[i] = x[i, 0]", ["dimension"]),
    (e_vector_then_scalar, "        v = 3.0", ["vec2"]),
    (e_python_call, "plain_python(x[i])", ["cannot call"]),
    (e_numpy_call, "np.sum(x)", ["cannot call"]),
    (e_keywords, "add2(x[i], b=1.0)", ["keyword"]),
    (e_serial_nested, "for t in ds.serial(range(3)):", ["ds.serial"]),
    (e_shapes, "ds.vec2(1.0, 2.0) + ds.vec3(1.0, 2.0, 3.0)", ["vec2", "vec3"]),
    (e_store_vector, "out[i] = ds.vec2(x[i], 2.0)", ["vec2"]),
    (e_tuple_local, "t = (1.0, 2.0)", ["tuple"]),
    (e_unpack_count, "a, b = ds.vec3(1.0, 2.0, 3.0)", ["unpack"]),
    (e_func_returns, "return ds.vec2(1.0, 2.0)", ["return"]),
    (e_loop_over_array, "for v in x:", ["range"]),
    (e_lambda, "g = lambda t: t", ["lambda"]),
    (e_list_comprehension, "sum([x[j] for j in range(3)])", ["comprehension"]),
    (e_string, 'len("hello")', ["hello"]),
    (e_slice, "out[i] = x[1:3]", ["slice"]),
    (e_array_attribute, "out[i] = x.size", [".size"]),
    (e_vector_compare, "ds.vec2(x[i], 2.0) < ds.vec2(0.0, 1.0)", ["vec2"]),
    (e_identity_runtime, "M = ds.identity(n)", ["constant"]),
    (e_func_arity, "out[i] = add2(x[i])", ["argument"]),
    (e_math_arity, "ds.sin(x[i], 2.0)", ["argument"]),
    (e_cross_4d, "ds.cross(ds.vec4(1.0), ds.vec4(x[i]))", ["cross"]),
    (e_inverse_nonsquare, "ds.inverse(ds.mat(2, 3, ds.f64)", ["square"]),
    (e_component_range, "out[i] = v[2]", ["out of range"]),
    (e_zero_d_index, "    out[0] = x[0]", ["0-d", "out[None]"]),
    (e_parallel_local_after, "    out[0] = y", ["parallel loop"]),
    (e_parallel_assigns_outer, "        s = s + x[i]", ["parallel loop"]),
    (e_assert, "assert x[i] > 0", ["Assert"]),
    (e_invert, "out[i] = ~x[i]", ["~"]),
    (e_is_none, "if x[i] is None:", ["Is"]),
    (e_array_func_vector, "takes_array(ds.vec2(1.0, 2.0), 0)", ["array"]),
    (e_recursion, "return n * factorial(n - 1)", ["recursion"]),
    (e_minmax_shapes, "ds.min(ds.vec2(x[i], 2.0), ds.vec3(0.0, 1.0, 2.0))", ["vec2", "vec3"]),
    (e_transpose_vector, "ds.transpose(ds.vec2(x[i], 2.0))", ["matrix"]),
    (e_vec_matmul_shapes, "(ds.vec3(x[i], 2.0, 3.0) @ ds.mat2(1.0))", ["vec3", "mat2"]),
    (e_outer_matrix, "ds.outer(ds.vec2(x[i], 2.0), ds.mat2(1.0))", ["outer"]),
    (e_kernel_call, "        e_recursion(x, out)", ["cannot call"]),
]


def line_of(text):
    """The 1-based line number of the one line of this file that contains ``text`` (outside COMPILE_ERRORS)."""
    hits = [k + 1 for k, ln in enumerate(SOURCE_LINES) if text in ln and "(e_" not in ln and '"' + text not in ln]
    assert len(hits) == 1, (text, hits)
    return hits[0]


def assert_located(err, text):
    """``err`` renders as ``file:line:col: ...``, the source line, then a caret line under the span."""
    msg = str(err)
    line = line_of(text)
    head = f"{HERE}:{line}:"
    assert head in msg, msg
    lines = msg.splitlines()
    col = int(lines[0].split(head)[1].split(":")[0])            # 1-based column
    src = next(k for k, ln in enumerate(lines) if ln.strip() == SOURCE_LINES[line - 1].strip())
    caret = lines[src + 1]
    assert caret.strip() and set(caret.strip()) == {"^"}, msg
    start = len(caret) - len(caret.lstrip())
    indent = len(lines[src]) - len(SOURCE_LINES[line - 1].rstrip())
    assert start == indent + col - 1, msg                        # the caret starts under the column
    assert start + len(caret.strip()) <= len(lines[src]) + 1, msg   # and stays within the line


@pytest.mark.parametrize("kernel, text, words", COMPILE_ERRORS, ids=[c[0].__name__ for c in COMPILE_ERRORS])
def test_compile_errors(kernel, text, words, py):
    x = _x(kernel)
    out = ds.zeros(()) if kernel is e_zero_d_index else ds.full(3, -7.0)
    args = (x, out, 3) if kernel is e_identity_runtime else (x, out)
    before = snapshot(out)
    with pytest.raises(ds.CompileError) as info:
        kernel(*args)
    assert isinstance(info.value, ds.DifsciError)
    assert_located(info.value, text)
    msg = str(info.value)
    for w in words:
        assert w in msg, msg
    assert unchanged(before, out)


def test_compile_errors_name_the_kernel_and_give_a_hint(py):
    with pytest.raises(ds.CompileError) as info:
        e_unknown_name(np.zeros(3), np.zeros(3))
    msg = str(info.value)
    assert "e_unknown_name" in msg and "hint:" in msg


def test_compile_error_on_cpu_backend(cpu):
    out = ds.full(3, -7.0)
    before = snapshot(out)
    with pytest.raises(ds.CompileError) as info:
        e_float_index(np.zeros(3), out)
    assert_located(info.value, "out[i * 0.5] = 1.0")
    assert unchanged(before, out)


def test_bad_signature_at_decoration():
    with pytest.raises(ds.CompileError) as info:
        @ds.kernel
        def with_default(x: ds.f64[:], scale=2.0):
            for i in range(x.shape[0]):
                x[i] = scale
    assert_located(info.value, "def with_default(x: ds.f64[:], scale=2.0):")
    with pytest.raises(ds.CompileError):
        @ds.func
        def star_args(*xs):
            return 1.0


def test_compile_errors_are_difsci_errors():
    assert issubclass(ds.CompileError, ds.DifsciError)
    assert issubclass(ds.AutodiffError, ds.DifsciError) and issubclass(ds.BackendError, ds.DifsciError)


def test_unknown_backend():
    with pytest.raises(ValueError):
        ds.init(backend="tpu")


@pytest.mark.skipif(cuda_available(), reason="a GPU or the CUDA simulator is available here")
def test_cuda_without_gpu_says_so(py):
    with pytest.raises(ds.BackendError, match="NUMBA_ENABLE_CUDASIM"):
        ds.init(backend="cuda")


# ============================================================ bad launches
@ds.kernel
def k_launch(x: ds.f64[:], out: ds.f64[:, :], n: int, s: float, v: ds.vec2, p: ds.vec2[:], flag: bool,
             z: ds.f64[()]):
    for i in range(x.shape[0]):
        out[i, 0] = x[i] * n + s + v.x + p[i].y
    z[None] = 1.0


def good_args():
    return [np.ones(3), ds.full((3, 2), -7.0), 2, 1.5, np.array([1.0, 2.0]), ds.zeros(3, dtype=ds.vec2), True,
            ds.full((), -7.0)]


def _replace(k, value):
    def make():
        a = good_args()
        if k is None:
            return a[:-1]
        a[k] = value
        return a
    return make


# (case id, make args, error class, parameter named)
BAD_LAUNCHES = [
    ("too_few", _replace(None, None), TypeError, None),
    ("ndim", _replace(0, np.ones((3, 1))), ValueError, "x"),
    ("dtype", _replace(0, np.ones(3, np.float32)), TypeError, "x"),
    ("int_array", _replace(0, np.ones(3, np.int64)), TypeError, "x"),
    ("list", _replace(0, [1.0, 2.0, 3.0]), TypeError, "x"),
    ("number_for_array", _replace(0, 1.0), TypeError, "x"),
    ("array_for_int", _replace(2, np.ones(3)), TypeError, "n"),
    ("float_for_int", _replace(2, 2.5), TypeError, "n"),
    ("string", _replace(3, "1.5"), TypeError, "s"),
    ("vector_length", _replace(4, np.array([1.0, 2.0, 3.0])), ValueError, "v"),
    ("number_for_vector", _replace(4, 1.0), TypeError, "v"),
    ("vector_array_trailing_axis", _replace(5, np.zeros((3, 3))), ValueError, "p"),
    ("vector_array_type", _replace(5, ds.zeros(3, dtype=ds.vec3)), TypeError, "p"),
    ("vector_array_precision", _replace(5, ds.zeros(3, dtype=ds.vec2f)), TypeError, "p"),
    ("unsigned", _replace(0, np.ones(3, np.uint32)), TypeError, "x"),
    ("none", _replace(0, None), TypeError, "x"),
    ("float_for_bool", _replace(6, 0.5), TypeError, "flag"),
    ("zero_d", _replace(7, ds.zeros(1)), ValueError, "z"),
    ("complex", _replace(0, np.ones(3, complex)), TypeError, "x"),
    ("output_dims", _replace(1, ds.zeros(3)), ValueError, "out"),
]


@pytest.mark.parametrize("case, make, cls, param", BAD_LAUNCHES, ids=[c[0] for c in BAD_LAUNCHES])
def test_bad_launches(case, make, cls, param, py):
    k_launch(*good_args())                    # a good launch first: its cached fast path must not let bad ones in
    args = make()
    arrays = [a for a in args if isinstance(a, (ds.Array, np.ndarray))]
    before = snapshot(*arrays)
    with pytest.raises(cls) as info:
        k_launch(*args)
    msg = str(info.value)
    assert "k_launch" in msg, msg
    if param is not None:
        assert f"parameter `{param}`" in msg, msg
    assert unchanged(before, *arrays)


def test_bad_launch_on_cpu(cpu):
    k_launch(*good_args())
    args = good_args()
    args[4] = np.array([1.0, 2.0, 3.0])
    before = snapshot(args[1], args[7])
    with pytest.raises(ValueError, match="parameter `v`"):
        k_launch(*args)
    assert unchanged(before, args[1], args[7])


@ds.kernel
def k_unannotated(x, out):
    for i in range(out.shape[0]):
        out[i] = x[i] + 1.0


def test_non_array_for_unannotated_array_parameter(py):
    out = ds.full(3, -7.0)
    before = snapshot(out)
    with pytest.raises(TypeError) as info:
        k_unannotated(1.5, out)
    msg = str(info.value)
    assert "k_unannotated" in msg and "parameter `x`" in msg and f"{HERE}:" in msg
    assert unchanged(before, out)
    k_unannotated(np.zeros(3), out)          # the right type still works afterwards
    assert (out.numpy() == 1.0).all()


def test_func_errors_from_python(py):
    with pytest.raises(TypeError, match="add2"):
        add2(1.0)
    with pytest.raises(TypeError, match="parameter `grid`"):
        takes_array(np.zeros(4), 1)
    with pytest.raises(TypeError):
        add2("a", 1.0)


@ds.kernel
def e_element_component(p: ds.vec3[:], out: ds.f64[:]):
    for i in range(p.shape[0]):
        out[i] = 1.0
        p[i].w = 1.0


def test_bad_component_of_an_array_element(py):
    p, out = ds.full(3, 2.0, dtype=ds.vec3), ds.full(3, -7.0)
    before = snapshot(p, out)
    with pytest.raises(ds.CompileError, match="not a component") as info:
        e_element_component(p, out)
    assert_located(info.value, "p[i].w = 1.0")
    assert unchanged(before, p, out)
