"""Every primitive's partial derivatives (primitives.py and the operators of
``op_partials``) against sympy, at points inside each domain; the tie
conventions of API.md §3; and the same rules end to end through ds.grad and
ds.jvp of small funcs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

import difsci as ds
from difsci.lang import build as B
from difsci.lang import ir
from difsci.lang import types as T
from difsci.lang.backends import rt_python
from difsci.lang.backends.python_source import Printer
from difsci.lang.primitives import PRIMS, partials

from gradcheck import load_kernels, py_backend, using  # noqa: F401

x_, y_ = sp.symbols("x y", real=True)

# name -> (sympy expression in x (and y), points inside the domain)
P1 = [(0.4,), (-1.1,)]
P_UNIT = [(0.3,), (-0.6,)]
P_POS = [(0.7,), (2.5,)]
P2 = [(0.3, -0.8), (-1.2, 0.5)]
SYMPY = {
    "sin": (sp.sin(x_), P1), "cos": (sp.cos(x_), P1), "tan": (sp.tan(x_), P1),
    "asin": (sp.asin(x_), P_UNIT), "acos": (sp.acos(x_), P_UNIT), "atan": (sp.atan(x_), P1),
    "atan2": (sp.atan2(x_, y_), P2 + [(0.5, 0.7)]),
    "sinh": (sp.sinh(x_), P1), "cosh": (sp.cosh(x_), P1), "tanh": (sp.tanh(x_), P1),
    "exp": (sp.exp(x_), P1), "exp2": (2 ** x_, P1), "expm1": (sp.exp(x_) - 1, P1),
    "log": (sp.log(x_), P_POS), "log1p": (sp.log(1 + x_), P_POS + [(-0.5,)]),
    "log2": (sp.log(x_) / sp.log(2), P_POS), "log10": (sp.log(x_) / sp.log(10), P_POS),
    "sqrt": (sp.sqrt(x_), P_POS), "cbrt": (sp.sign(x_) * sp.Abs(x_) ** sp.Rational(1, 3), P_POS + [(-1.3,)]),
    "hypot": (sp.sqrt(x_ ** 2 + y_ ** 2), P2), "erf": (sp.erf(x_), P1), "erfc": (sp.erfc(x_), P1),
    "abs": (sp.Abs(x_), P1), "sign": (sp.sign(x_), P1), "floor": (sp.floor(x_), [(0.4,), (-1.3,)]),
    "ceil": (sp.ceiling(x_), [(0.4,), (-1.3,)]),
    "min": (sp.Min(x_, y_), P2), "max": (sp.Max(x_, y_), P2),
}
# piecewise-constant ones: sympy leaves their derivative unevaluated, it is 0 away from the jumps
ZERO_DERIV = {"sign", "floor", "ceil"}
RANDOM = {"randu", "randn"}

OPS = {
    "add": (x_ + y_, P2), "sub": (x_ - y_, P2), "mul": (x_ * y_, P2), "div": (x_ / y_, P2),
    "neg": (-x_, P1), "pow": (x_ ** y_, [(0.7, 1.3), (2.5, -0.4)]),
    "mod": (x_ - y_ * sp.floor(x_ / y_), [(2.3, 0.7), (-2.3, 0.7), (2.3, -0.7)]),
}


def _sym_grad(expr, nargs, point):
    syms = (x_, y_)[:nargs]
    sub = dict(zip(syms, point))
    out = []
    for s in syms:
        d = sp.diff(expr, s)
        # floor's derivative is 0 away from its jumps; sympy leaves it unevaluated
        d = d.replace(lambda e: isinstance(e, (sp.Derivative, sp.Subs)), lambda e: sp.Integer(0))
        out.append(float(d.subs(sub).evalf()))
    return out


def _eval(e, point, names):
    if e is None:
        return 0.0
    ns = dict(vars(rt_python))
    ns.update(zip(names, point))
    return float(eval(Printer().expr(e), ns))  # noqa: S307


def _ir_partials(op, point):
    names = [f"x{k}" for k in range(len(point))]
    args = tuple(ir.Var(T.f64, n) for n in names)
    if op in PRIMS:
        e = B.call(op, *args)
    elif op == "neg":
        e = ir.Op(T.f64, "neg", args)
    else:
        e = ir.Op(T.f64, op, args)
    return [_eval(p, point, names) for p in partials(e)]


def test_every_primitive_is_covered():
    missing = set(PRIMS) - set(SYMPY) - RANDOM
    assert not missing, f"primitives without a sympy check: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(SYMPY))
def test_primitive_partials_match_sympy(name):
    expr, points = SYMPY[name]
    for pt in points:
        want = [0.0] * len(pt) if name in ZERO_DERIV else _sym_grad(expr, len(pt), pt)
        got = _ir_partials(name, pt)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=f"{name}{pt}")


@pytest.mark.parametrize("name", sorted(OPS))
def test_operator_partials_match_sympy(name):
    expr, points = OPS[name]
    for pt in points:
        want = _sym_grad(expr, len(pt), pt)
        got = _ir_partials(name, pt)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=f"{name}{pt}")


def test_pow_constant_exponents():
    a = ir.Var(T.f64, "x0")
    for k, pt in ((2, 1.7), (3, -1.4), (0.5, 2.2), (-2, 0.9)):
        e = B.binop("pow", a, B.const(k))
        da, db = partials(e)
        assert db is None
        assert math.isclose(_eval(da, (pt,), ["x0"]), k * pt ** (k - 1), rel_tol=1e-12)


def test_piecewise_constant_ops_have_zero_partials():
    a, b = ir.Var(T.f64, "x0"), ir.Var(T.f64, "x1")
    for op in ("floordiv", "lt", "le", "gt", "ge", "eq", "ne"):
        assert all(p is None for p in partials(ir.Op(T.f64, op, (a, b)))), op
    for op in ("randu", "randn"):
        ints = tuple(ir.Var(T.i64, f"k{j}") for j in range(4))
        assert all(p is None for p in partials(B.call(op, *ints))), op
    # int(x) is piecewise constant; float(i) of an int has no partial either
    assert partials(ir.Op(T.i64, "cast", (a,))) == (None,)
    assert partials(ir.Op(T.f64, "cast", (ir.Var(T.i64, "k"),))) == (None,)
    (p,) = partials(ir.Op(T.f32, "cast", (a,)))
    assert _eval(p, (0.3,), ["x0"]) == 1.0


def test_select_partials():
    c = ir.Var(T.boolean, "c")
    a, b = ir.Var(T.f64, "x0"), ir.Var(T.f64, "x1")
    pc, pa, pb = partials(ir.Op(T.f64, "select", (c, a, b)))
    assert pc is None
    for cv in (True, False):
        ns = dict(vars(rt_python), c=cv, x0=1.0, x1=2.0)
        assert eval(Printer().expr(pa), ns) == (1.0 if cv else 0.0)  # noqa: S307
        assert eval(Printer().expr(pb), ns) == (0.0 if cv else 1.0)  # noqa: S307


# ----------------------------------------------------------- tie conventions
def test_tie_partials_split_equally():
    for name in ("min", "max"):
        assert _ir_partials(name, (0.7, 0.7)) == [0.5, 0.5]
    assert _ir_partials("abs", (0.0,)) == [0.0]
    assert _ir_partials("sign", (0.0,)) == [0.0]


@ds.func
def f_max_self(x: float) -> float:
    return ds.max(x, x)


@ds.func
def f_min_self(x: float) -> float:
    return min(x, x) * 3.0


@ds.func
def f_max2(x: float, y: float) -> float:
    return ds.max(x, y)


@ds.func
def f_min2(x: float, y: float) -> float:
    return ds.min(x, y)


@ds.func
def f_clamp(x: float, lo: float, hi: float) -> float:
    return ds.clamp(x, lo, hi)


@ds.func
def f_abs(x: float) -> float:
    return ds.abs(x) + abs(x)


@ds.func
def f_sign(x: float) -> float:
    return ds.sign(x) * 2.0 + x * ds.sign(x)


@ds.func
def f_floor_ceil(x: float) -> float:
    return ds.floor(x) + ds.ceil(x) + x // 0.3


@ds.func
def f_mod(a: float, b: float) -> float:
    return a % b


@ds.func
def f_compare(x: float, y: float) -> float:
    c = float(x > y) + float(x <= y)
    n = int(x * 10.0)
    return c + n + x


def test_tie_conventions_through_grad(py_backend):
    assert ds.grad(f_max_self)(0.3) == 1.0
    assert ds.grad(f_min_self)(-0.3) == 3.0
    assert ds.grad(f_max2, 0)(0.5, 0.5) == 0.5
    assert ds.grad(f_max2, 1)(0.5, 0.5) == 0.5
    assert ds.grad(f_min2, 0)(0.5, 0.5) == 0.5
    assert ds.grad(f_min2, 1)(0.5, 0.5) == 0.5
    assert ds.grad(f_max2, 0)(0.6, 0.5) == 1.0 and ds.grad(f_max2, 1)(0.6, 0.5) == 0.0
    assert ds.grad(f_min2, 0)(0.6, 0.5) == 0.0 and ds.grad(f_min2, 1)(0.6, 0.5) == 1.0
    # clamp's bounds: ties split between x and the bound
    for x, want in ((0.0, (0.5, 0.5, 0.0)), (1.0, (0.5, 0.0, 0.5)), (0.5, (1.0, 0.0, 0.0)),
                    (-1.0, (0.0, 1.0, 0.0)), (2.0, (0.0, 0.0, 1.0))):
        got = tuple(ds.grad(f_clamp, k)(x, 0.0, 1.0) for k in range(3))
        assert got == want, (x, got)
    assert ds.grad(f_abs)(0.0) == 0.0
    assert ds.grad(f_abs)(-2.0) == -2.0
    assert ds.grad(f_sign)(0.0) == 0.0
    assert ds.grad(f_sign)(-1.5) == -1.0
    assert ds.grad(f_floor_ceil)(0.45) == 0.0
    assert ds.grad(f_compare, 0)(0.3, 0.2) == 1.0
    assert ds.grad(f_compare, 1)(0.3, 0.2) == 0.0


def test_mod_convention(py_backend):
    for a, b in ((2.3, 0.7), (-2.3, 0.7), (2.3, -0.7)):
        assert ds.grad(f_mod, 0)(a, b) == 1.0
        assert math.isclose(ds.grad(f_mod, 1)(a, b), -math.floor(a / b))
        assert math.isclose(f_mod(a, b), a % b, rel_tol=1e-12)


def test_forward_mode_tie_conventions(py_backend):
    assert ds.jvp(f_max_self)(0.3, 1.0) == (0.3, 1.0)
    assert ds.jvp(f_max2)(0.5, 0.5, 1.0, 0.0)[1] == 0.5
    assert ds.jvp(f_abs)(0.0, 1.0)[1] == 0.0


# ------------------------------------------------- end to end, every primitive
_CALL = {"exp2": "ds.exp2(x)", "hypot": "ds.hypot(x, y)", "atan2": "ds.atan2(x, y)",
         "min": "ds.min(x, y)", "max": "ds.max(x, y)"}


@pytest.fixture(scope="module")
def prim_funcs(tmp_path_factory):
    lines = ["import math", "import difsci as ds", ""]
    for name in sorted(SYMPY):
        call = _CALL.get(name, f"ds.{name}(x)")
        lines += ["@ds.func", f"def f_{name}(x: float, y: float) -> float:", f"    return {call}", ""]
    # the math-module spellings map to the same primitives
    lines += ["@ds.func", "def f_math(x: float, y: float) -> float:",
              "    return math.sin(x) * math.exp(y) + math.atan2(x, y) + math.hypot(x, y) + math.fabs(x) "
              "+ math.pow(y * y, x)", ""]
    lines += ["@ds.func", "def f_ops(x: float, y: float) -> float:",
              "    return (x + y) * (x - y) / (y * y + 1.0) - x ** 3 + (y * y) ** x + x ** 2.5 % 0.7 + -x", ""]
    return load_kernels(tmp_path_factory.mktemp("prims"), "\n".join(lines), "_ad_prim_funcs")


def _sym_value(expr, pt):
    return float(expr.subs(dict(zip((x_, y_), pt))).evalf())


def _point2(pt):
    return (pt[0], pt[1] if len(pt) > 1 else 0.37)


@pytest.mark.parametrize("name", sorted(SYMPY))
def test_primitive_grad_and_jvp_end_to_end(name, prim_funcs, py_backend):
    f = getattr(prim_funcs, f"f_{name}")
    expr, points = SYMPY[name]
    nargs = 2 if y_ in expr.free_symbols else 1
    for pt in points:
        x, y = _point2(pt)
        want = [0.0, 0.0] if name in ZERO_DERIV else (_sym_grad(expr, nargs, (x, y)) + [0.0])[:2]
        got = [ds.grad(f, 0)(x, y), ds.grad(f, 1)(x, y)]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=f"grad {name}{pt}")
        v, t = ds.jvp(f)(x, y, 0.3, -0.7)
        np.testing.assert_allclose(v, _sym_value(expr, (x, y)) if name not in ("floor", "ceil") else f(x, y),
                                   rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(t, 0.3 * want[0] - 0.7 * want[1], rtol=1e-12, atol=1e-14,
                                   err_msg=f"jvp {name}{pt}")


def test_math_module_and_operators_end_to_end(prim_funcs, py_backend):
    ex = (sp.sin(x_) * sp.exp(y_) + sp.atan2(x_, y_) + sp.sqrt(x_ ** 2 + y_ ** 2) + sp.Abs(x_)
          + (y_ * y_) ** x_)
    eo = (x_ + y_) * (x_ - y_) / (y_ * y_ + 1) - x_ ** 3 + (y_ * y_) ** x_ + (x_ ** 2.5 - 0.7 * sp.floor(x_ ** 2.5 / 0.7)) - x_
    for f, expr in ((prim_funcs.f_math, ex), (prim_funcs.f_ops, eo)):
        for pt in ((0.6, 1.3), (1.1, -0.4)):
            want = _sym_grad(expr, 2, pt)
            got = [ds.grad(f, 0)(*pt), ds.grad(f, 1)(*pt)]
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)
            t = ds.jvp(f)(*pt, 1.0, 0.0)[1]
            np.testing.assert_allclose(t, want[0], rtol=1e-11)


@pytest.mark.parametrize("name", ["sin", "atan2", "hypot", "erf", "cbrt", "max", "log1p"])
def test_primitive_grad_cpu(name, prim_funcs):
    f = getattr(prim_funcs, f"f_{name}")
    expr, points = SYMPY[name]
    nargs = 2 if y_ in expr.free_symbols else 1
    with using("cpu"):
        x, y = _point2(points[0])
        want = (_sym_grad(expr, nargs, (x, y)) + [0.0])[:2]
        got = [ds.grad(f, 0)(x, y), ds.grad(f, 1)(x, y)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
