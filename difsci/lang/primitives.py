"""Every math primitive in one place: its type rule, constant folding, its
partial derivatives (from which both forward and reverse mode follow), and its
Python/numba spelling.

A partial rule takes the argument expressions and the result expression and
returns one partial derivative per argument (``None`` = identically zero).
At a tie ``min``/``max`` split the derivative equally; ``abs``/``sign`` have
derivative 0 at 0; ``floor``/``ceil``/``sign`` have derivative 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import types as T
from .build import add, call, compare, const, div, mul, neg, select, sub


@dataclass(frozen=True)
class Prim:
    name: str
    nargs: int
    spell: str                     # format string over {0}, {1}, ...
    kind: str                      # 'float' (float_of args), 'same' (promote), 'bool'
    partials: Callable | None      # (args, result) -> tuple[Expr | None]
    fold: Callable | None = None

    def result_type(self, tys):
        ty = tys[0]
        for t in tys[1:]:
            ty = T.promote(ty, t)
        if self.kind == "float":
            return T.float_of(ty)
        if self.kind == "bool":
            return T.boolean
        return ty


PRIMS: dict[str, Prim] = {}


def prim(name, nargs, spell, kind, fold=None):
    def deco(fn):
        PRIMS[name] = Prim(name, nargs, spell, kind, fn, fold)
        return fn
    return deco


def _c(v):
    return const(float(v))


def _one_minus_sq(x):
    return sub(_c(1), mul(x, x))


# --------------------------------------------------------------- trigonometry
@prim("sin", 1, "math.sin({0})", "float", math.sin)
def _(a, r): return (call("cos", a[0]),)
@prim("cos", 1, "math.cos({0})", "float", math.cos)
def _(a, r): return (neg(call("sin", a[0])),)
@prim("tan", 1, "math.tan({0})", "float", math.tan)
def _(a, r): return (add(_c(1), mul(r, r)),)
@prim("asin", 1, "math.asin({0})", "float", math.asin)
def _(a, r): return (div(_c(1), call("sqrt", _one_minus_sq(a[0]))),)
@prim("acos", 1, "math.acos({0})", "float", math.acos)
def _(a, r): return (div(_c(-1), call("sqrt", _one_minus_sq(a[0]))),)
@prim("atan", 1, "math.atan({0})", "float", math.atan)
def _(a, r): return (div(_c(1), add(_c(1), mul(a[0], a[0]))),)
@prim("atan2", 2, "math.atan2({0}, {1})", "float", math.atan2)
def _(a, r):
    y, x = a
    d = add(mul(x, x), mul(y, y))
    return (div(x, d), neg(div(y, d)))
@prim("sinh", 1, "math.sinh({0})", "float", math.sinh)
def _(a, r): return (call("cosh", a[0]),)
@prim("cosh", 1, "math.cosh({0})", "float", math.cosh)
def _(a, r): return (call("sinh", a[0]),)
@prim("tanh", 1, "math.tanh({0})", "float", math.tanh)
def _(a, r): return (_one_minus_sq(r),)


# -------------------------------------------------------- exponentials, roots
@prim("exp", 1, "math.exp({0})", "float", math.exp)
def _(a, r): return (r,)
@prim("exp2", 1, "np.exp2({0})", "float", lambda x: 2.0 ** x)
def _(a, r): return (mul(r, _c(math.log(2.0))),)
@prim("expm1", 1, "math.expm1({0})", "float", math.expm1)
def _(a, r): return (add(r, _c(1)),)
@prim("log", 1, "math.log({0})", "float", math.log)
def _(a, r): return (div(_c(1), a[0]),)
@prim("log1p", 1, "math.log1p({0})", "float", math.log1p)
def _(a, r): return (div(_c(1), add(_c(1), a[0])),)
@prim("log2", 1, "math.log2({0})", "float", math.log2)
def _(a, r): return (div(_c(1 / math.log(2.0)), a[0]),)
@prim("log10", 1, "math.log10({0})", "float", math.log10)
def _(a, r): return (div(_c(1 / math.log(10.0)), a[0]),)
@prim("sqrt", 1, "math.sqrt({0})", "float", math.sqrt)
def _(a, r): return (mul(_c(0.5), div(_c(1), r)),)   # = 0.5 / r exactly; 1 / r is shared with d(x / r)
@prim("cbrt", 1, "np.cbrt({0})", "float", lambda x: math.copysign(abs(x) ** (1 / 3), x))
def _(a, r): return (div(_c(1), mul(_c(3), mul(r, r))),)
@prim("hypot", 2, "math.hypot({0}, {1})", "float", math.hypot)
def _(a, r): return (div(a[0], r), div(a[1], r))
@prim("erf", 1, "math.erf({0})", "float", math.erf)
def _(a, r): return (mul(_c(2 / math.sqrt(math.pi)), call("exp", neg(mul(a[0], a[0])))),)
@prim("erfc", 1, "math.erfc({0})", "float", math.erfc)
def _(a, r): return (mul(_c(-2 / math.sqrt(math.pi)), call("exp", neg(mul(a[0], a[0])))),)


# ------------------------------------------------------------ piecewise ones
@prim("abs", 1, "abs({0})", "same", abs)
def _(a, r): return (call("sign", a[0]),)
@prim("sign", 1, "np.sign({0})", "same", lambda x: (x > 0) - (x < 0))
def _(a, r): return (None,)
@prim("floor", 1, "np.floor({0})", "same", lambda x: type(x)(math.floor(x)))
def _(a, r): return (None,)
@prim("ceil", 1, "np.ceil({0})", "same", lambda x: type(x)(math.ceil(x)))
def _(a, r): return (None,)


def _tie_split(win, tie):
    return select(win, _c(1), select(tie, _c(0.5), _c(0)))


@prim("min", 2, "min({0}, {1})", "same", min)
def _(a, r):
    x, y = a
    tie = compare("eq", x, y)
    return (_tie_split(compare("lt", x, y), tie), _tie_split(compare("lt", y, x), tie))
@prim("max", 2, "max({0}, {1})", "same", max)
def _(a, r):
    x, y = a
    tie = compare("eq", x, y)
    return (_tie_split(compare("gt", x, y), tie), _tie_split(compare("gt", y, x), tie))


# ------------------------------------------------------------ random numbers
@prim("randu", 4, "randu({0}, {1}, {2}, {3})", "float")
def _(a, r): return (None,) * 4
@prim("randn", 4, "randn({0}, {1}, {2}, {3})", "float")
def _(a, r): return (None,) * 4


# -------------------------------------------------------- operator partials
def op_partials(op: str, args, r):
    """Partials of the built-in operators (``Op.op`` not in PRIMS)."""
    if op == "add":
        return (_c(1), _c(1))
    if op == "sub":
        return (_c(1), _c(-1))
    if op == "mul":
        return (args[1], args[0])
    if op == "div":
        # d/db a/b = -a (1/b)^2: one division (1/b, shared with d/da) instead of two, and no need
        # for the quotient itself (a replayed forward would have to recompute it)
        c = div(_c(1), args[1])
        return (c, neg(mul(args[0], mul(c, c))))
    if op == "neg":
        return (_c(-1),)
    if op == "pow":
        a, b = args
        from .ir import Const
        if isinstance(b, Const):
            if b.value == 2:
                da = mul(_c(2), a)
            else:
                da = mul(b, call_pow(a, sub(b, const(1))))
            return (da, None)
        # d/db a**b = log(a) a**b, taken as 0 at a == 0 (its limit for b > 0)
        db = select(compare("eq", a, _c(0)), _c(0), mul(call("log", a), r))
        return (mul(b, call_pow(a, sub(b, const(1)))), db)
    if op == "mod":
        return (_c(1), neg(call("floor", div(args[0], args[1]))))
    if op == "select":
        c = args[0]
        return (None, select(c, _c(1), _c(0)), select(c, _c(0), _c(1)))
    if op == "cast":
        return (_c(1),) if r.ty.is_float and args[0].ty.is_float else (None,)
    # floordiv, comparisons, logic: piecewise constant
    return (None,) * len(args)


def call_pow(a, b):
    from .build import binop
    return binop("pow", a, b)


def partials(e, r=None):
    """Partial derivatives of the Op node ``e`` w.r.t. each of its arguments."""
    r = e if r is None else r
    if e.op in PRIMS:
        return PRIMS[e.op].partials(e.args, r)
    return op_partials(e.op, e.args, r)


NP_FUNCS = {"np": np}
