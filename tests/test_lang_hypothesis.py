"""Random expression trees and small kernels, written out as real source files
(kernels are parsed from their files), run on the numba CPU backend and on the
plain-Python oracle: the two must agree.

Both backends do the same IEEE operations in the same order and call the same
libm, so they agree to the last bit in practice; the tolerance only guards
against an ulp from a math library.  Discontinuous operations (floor, //, %,
comparisons) are applied to inputs only, so such an ulp can never flip a
branch and turn into a large difference.
"""
from __future__ import annotations

import atexit
import hashlib
import importlib.util
import itertools
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import difsci as ds  # noqa: E402

GEN_DIR = Path(tempfile.mkdtemp(prefix="difsci_hyp_"))
atexit.register(shutil.rmtree, GEN_DIR, True)
N = 24
_counter = itertools.count()

FLOAT_LEAVES = ["a", "b", "c", "x[i]", "y[i]", "s"]
UNARY = ["ds.sin", "ds.cos", "ds.tanh", "ds.atan", "ds.exp", "ds.sqrt", "ds.log", "ds.abs", "math.erf", "ds.cbrt",
         "ds.log1p", "ds.expm1", "ds.asin", "math.cosh", "-"]
BINARY = ["+", "-", "*", "/"]
CALL2 = ["ds.min", "ds.max", "ds.atan2", "ds.hypot", "max", "min"]
# discontinuous: only ever applied to inputs
STEP = ["ds.floor({0})", "ds.ceil({0})", "({0} // 0.7)", "({0} % 1.3)", "ds.sign({0})", "int({0})"]
CONDS = ["{0} < {1}", "{0} >= {1}", "{0} == {1}", "{0} < 0.0 and {1} > 0.0", "not {0} > {1}", "{0} != {1} or {0} > 0.5"]

consts = st.sampled_from(["0.5", "2.0", "-1.5", "3.0", "0.0", "1e-3", "10.0", "np.float64(0.25)", "math.pi"])
leaves = st.one_of(st.sampled_from(FLOAT_LEAVES), consts)


def step_leaf():
    return st.builds(lambda f, v: f.format(v), st.sampled_from(STEP), st.sampled_from(FLOAT_LEAVES))


def cond():
    return st.builds(lambda c, u, v: c.format(u, v), st.sampled_from(CONDS), st.sampled_from(FLOAT_LEAVES),
                     st.one_of(st.sampled_from(FLOAT_LEAVES), consts))


def extend(children):
    return st.one_of(
        st.builds(lambda f, u: f"{f}({u})" if f != "-" else f"-({u})", st.sampled_from(UNARY), children),
        st.builds(lambda op, u, v: f"({u} {op} {v})", st.sampled_from(BINARY), children, children),
        st.builds(lambda f, u, v: f"{f}({u}, {v})", st.sampled_from(CALL2), children, children),
        st.builds(lambda u: f"({u}) ** 2", children),
        st.builds(lambda u, p: f"ds.abs({u}) ** {p}", children, st.sampled_from(["0.5", "1.5", "-0.5"])),
        st.builds(lambda p, u, v: f"({u} if {p} else {v})", cond(), children, children),
        st.builds(lambda p, u, v: f"ds.select({p}, {u}, {v})", cond(), children, children),
        st.builds(lambda u, lo: f"ds.clamp({u}, {lo}, {lo} + 1.0)", children, st.sampled_from(["-0.5", "a", "0.0"])),
    )


exprs = st.recursive(st.one_of(leaves, step_leaf()), extend, max_leaves=10)

KERNEL = '''\
import math
import numpy as np
import difsci as ds


@ds.kernel
def gen(x, y, out, c: float):
    for i in range(x.shape[0]):
        a = x[i] * 0.5
        b = y[i] - a
        s = 0.0
        for j in range(3):
            s = s + {loop}
        if {cond}:
            t = {e0}
        else:
            t = {e1}
{outs}
'''


def load_kernel(source):
    """Write ``source`` to a real file and import it (kernels read their source with inspect)."""
    name = f"gen_{hashlib.sha1(source.encode()).hexdigest()[:12]}_{next(_counter)}"
    path = GEN_DIR / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod.gen


def inputs(dtype):
    r = np.random.default_rng(0)
    x = r.uniform(-3, 3, N)
    x[:6] = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0]
    y = r.uniform(-3, 3, N)
    y[:6] = [0.0, 1.0, 1.0, -2.0, -0.5, 2.0]
    return x.astype(dtype), y.astype(dtype)


def run(kernel, dtype, backend, n_out):
    x, y = inputs(dtype)
    out = np.zeros((N, n_out), dtype)
    ds.init(backend=backend)
    try:
        kernel(x, y, out, 0.75)
    finally:
        ds.init(backend="cpu")
    return out


def build(loop, c, e0, e1, outs):
    lines = "\n".join(f"        out[i, {k}] = {e}" for k, e in enumerate(outs + ["t", "s"]))
    return KERNEL.format(loop=loop, cond=c, e0=e0, e1=e1, outs=lines), len(outs) + 2


def agree(src, n_out, dtype):
    kernel = load_kernel(src)
    with np.errstate(all="ignore"):
        want = run(kernel, dtype, "python", n_out)
    got = run(kernel, dtype, "cpu", n_out)
    rtol, atol = (1e-9, 1e-12) if dtype == np.float64 else (2e-5, 1e-6)
    try:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    except AssertionError:
        print(src)
        raise


# Every example compiles a kernel with numba (about a second): no shrinking (the failing
# source is printed instead), a fixed sequence of examples, no example database.
COMMON = dict(deadline=None, derandomize=True, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=14, **COMMON)
@given(loop=exprs, c=cond(), e0=exprs, e1=exprs, outs=st.lists(exprs, min_size=2, max_size=5))
def test_random_kernels_f64_cpu_matches_python(loop, c, e0, e1, outs):
    src, n = build(loop, c, e0, e1, outs)
    agree(src, n, np.float64)


@settings(max_examples=5, **COMMON)
@given(e0=exprs, e1=exprs, outs=st.lists(exprs, min_size=2, max_size=4))
def test_random_kernels_f32_cpu_matches_python(e0, e1, outs):
    src, n = build("a * j", "a < b", e0, e1, outs)
    agree(src, n, np.float32)


INT_KERNEL = '''\
import numpy as np
import difsci as ds


@ds.kernel
def gen(x, y, out, c: int):
    for i in range(x.shape[0]):
        a = x[i]
        b = y[i]
{outs}
'''
INT_LEAVES = ["a", "b", "c", "i", "3", "-2", "7"]


def int_extend(children):
    return st.one_of(
        st.builds(lambda op, u, v: f"({u} {op} {v})", st.sampled_from(["+", "-", "*"]), children, children),
        st.builds(lambda op, u, d: f"({u} {op} {d})", st.sampled_from(["//", "%"]), children,
                  st.sampled_from(["3", "-2", "7", "(ds.abs(b) + 1)"])),
        st.builds(lambda f, u, v: f"{f}({u}, {v})", st.sampled_from(["ds.min", "ds.max", "min", "max"]), children,
                  children),
        st.builds(lambda u: f"ds.abs({u})", children),
        st.builds(lambda u, v, w: f"({u} if {v} > {w} else {w})", children, children, children),
    )


int_exprs = st.recursive(st.sampled_from(INT_LEAVES), int_extend, max_leaves=8)


@settings(max_examples=4, **COMMON)
@given(outs=st.lists(int_exprs, min_size=2, max_size=6))
def test_random_integer_kernels_are_exact(outs):
    src = INT_KERNEL.format(outs="\n".join(f"        out[i, {k}] = {e}" for k, e in enumerate(outs)))
    kernel = load_kernel(src)
    r = np.random.default_rng(1)
    x, y = r.integers(-50, 50, N), r.integers(-50, 50, N)
    res = []
    for b in ("python", "cpu"):
        out = np.zeros((N, len(outs)), np.int64)
        ds.init(backend=b)
        try:
            kernel(x, y, out, 5)
        finally:
            ds.init(backend="cpu")
        res.append(out)
    np.testing.assert_array_equal(res[1], res[0], err_msg=src)
    # and the oracle itself against Python's own integer semantics
    py_ds = type("PythonDs", (), {"abs": staticmethod(abs), "min": staticmethod(min), "max": staticmethod(max)})
    for i in range(N):
        env = {"ds": py_ds, "min": min, "max": max, "a": int(x[i]), "b": int(y[i]), "c": 5, "i": i}
        want = [eval(e, env) for e in outs]
        assert list(res[0][i]) == want, (src, i)


@pytest.mark.parametrize("expr", [
    "ds.floor(x[i]) + ds.ceil(y[i]) * (x[i] % 1.3) - y[i] // 0.7",
    "ds.select(x[i] < y[i], ds.exp(a), ds.log(ds.abs(b))) / (s + 1.0)",
    "ds.sqrt(a) + ds.log(b) + 1.0 / (x[i] * 0.0) + ds.acos(y[i])",
])
def test_fixed_expressions_match(expr):
    """Hand-picked regressions: special values and step functions."""
    src, n = build("a * j", "x[i] > 0.0", expr, "-" + expr, [expr])
    agree(src, n, np.float64)


def test_generated_source_is_valid_python():
    src, _ = build("a", "a < b", "a", "b", ["a + b"])
    compile(textwrap.dedent(src), "<gen>", "exec")
