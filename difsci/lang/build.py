"""Smart constructors for IR expressions, folding constants as they build.

Derivative rules are written with these (``mul(seed, cos(x))``), so that
multiplying by one or adding zero never reaches the generated source: this
keeps nested derivatives from blowing up in size.
"""
from __future__ import annotations

import math

import numpy as np

from . import types as T
from .ir import Const, Expr, Op, Var

ARITH = {"add", "sub", "mul", "div", "floordiv", "mod", "pow"}
COMPARE = {"lt", "le", "gt", "ge", "eq", "ne"}


def const(v, ty: T.Scalar | None = None) -> Const:
    if ty is None:
        if isinstance(v, bool):
            ty = T.boolean
        elif isinstance(v, int):
            ty = T.WEAK_INT
        else:
            ty = T.WEAK_FLOAT
    return Const(ty, _coerce(v, ty))


def _coerce(v, ty):
    """The Python value of a constant of type ``ty`` (f32 constants rounded to f32)."""
    if ty.is_bool:
        return bool(v)
    if ty.is_int:
        return int(v)
    if ty.name == "f32":
        return float(np.float32(v))
    return float(v)


def is_const(e, value=None) -> bool:
    return isinstance(e, Const) and (value is None or e.value == value)


def zero(ty):
    return Const(ty, _coerce(0, ty))


def cast(e: Expr, ty: T.Scalar) -> Expr:
    """Convert ``e`` to ``ty``; same storage type (weak or not) needs no conversion."""
    if e.ty == ty:
        return e
    if isinstance(e, Const):
        return Const(ty, _coerce(e.value, ty))
    if e.ty.name == ty.name:
        return e
    return Op(ty, "cast", (e,))


def binop(op: str, a: Expr, b: Expr) -> Expr:
    ty = T.promote(a.ty, b.ty)
    if op == "div":
        ty = T.float_of(ty)
    if op in COMPARE:
        rty = T.boolean
    else:
        rty = ty
    if isinstance(a, Const) and isinstance(b, Const):
        folded = _fold(op, a.value, b.value)
        if folded is None and ty.is_float and op in ARITH:
            folded = _fold_ieee(op, a.value, b.value)
        if folded is not None:
            return Const(rty, _coerce(folded, rty))
    if op == "add":
        if is_const(a, 0):
            return cast(b, ty)
        if is_const(b, 0):
            return cast(a, ty)
    elif op == "sub":
        if is_const(b, 0):
            return cast(a, ty)
        if is_const(a, 0):
            return neg(cast(b, ty))
    elif op == "mul":
        if is_const(a, 0) or is_const(b, 0):
            if ty.is_float or ty.is_int:
                return zero(ty)
        if is_const(a, 1):
            return cast(b, ty)
        if is_const(b, 1):
            return cast(a, ty)
        if is_const(a, -1):
            return neg(cast(b, ty))
        if is_const(b, -1):
            return neg(cast(a, ty))
    elif op == "div":
        if is_const(b, 1):
            return cast(a, ty)
        if is_const(a, 0) and ty.is_float:
            return zero(ty)
    elif op == "pow":
        if is_const(b, 1):
            return cast(a, ty)
        if is_const(b, 0):
            return Const(ty, _coerce(1, ty))
    return Op(rty, op, (a, b))


def _fold(op, x, y):
    try:
        if op == "add":
            return x + y
        if op == "sub":
            return x - y
        if op == "mul":
            return x * y
        if op == "div":
            return x / y
        if op == "floordiv":
            return x // y
        if op == "mod":
            return x % y
        if op == "pow":
            r = x ** y
            return r if not isinstance(r, complex) else None
        if op in COMPARE:
            return {"lt": x < y, "le": x <= y, "gt": x > y, "ge": x >= y, "eq": x == y, "ne": x != y}[op]
    except (ZeroDivisionError, OverflowError, ValueError):
        return None
    return None


_IEEE = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
         "floordiv": np.floor_divide, "mod": np.mod, "pow": np.power}


def _fold_ieee(op, x, y):
    """``x op y`` in float64 with NumPy's semantics (1.0 / 0.0 is inf, (-8.0) ** 0.5 nan), as the
    generated code computes it at run time, where Python's arithmetic would raise."""
    with np.errstate(all="ignore"):
        return float(_IEEE[op](np.float64(x), np.float64(y)))


def add(a, b):
    return binop("add", a, b)


def sub(a, b):
    return binop("sub", a, b)


def mul(a, b):
    return binop("mul", a, b)


def div(a, b):
    return binop("div", a, b)


def neg(a):
    if isinstance(a, Const):
        return Const(a.ty, -a.value)
    if isinstance(a, Op) and a.op == "neg":
        return a.args[0]
    return Op(a.ty, "neg", (a,))


def call(name: str, *args: Expr) -> Expr:
    """A math primitive applied to ``args`` (typed by its rule in primitives.py)."""
    from .primitives import PRIMS
    prim = PRIMS[name]
    ty = prim.result_type([a.ty for a in args])
    if all(isinstance(a, Const) for a in args) and prim.fold is not None:
        try:
            v = prim.fold(*[a.value for a in args])
            if isinstance(v, (int, float, bool)) and not (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
                return Const(ty, _coerce(v, ty))
        except (ValueError, ZeroDivisionError, OverflowError):
            pass
    return Op(ty, name, tuple(args))


def select(c: Expr, a: Expr, b: Expr) -> Expr:
    ty = T.promote(a.ty, b.ty)
    if isinstance(c, Const):
        return cast(a if c.value else b, ty)
    if a == b:
        return cast(a, ty)
    return Op(ty, "select", (c, cast(a, ty), cast(b, ty)))


def compare(op, a, b):
    return binop(op, a, b)


def logical(op: str, a: Expr, b: Expr) -> Expr:
    if isinstance(a, Const):
        if op == "and":
            return b if a.value else a
        return a if a.value else b
    return Op(T.boolean, op, (a, b))


def lnot(a: Expr) -> Expr:
    if isinstance(a, Const):
        return Const(T.boolean, not a.value)
    return Op(T.boolean, "not", (a,))


def var(name, ty):
    return Var(ty, name)
