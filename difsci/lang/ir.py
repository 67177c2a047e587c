"""The typed scalar IR.

Vectors and matrices are scalarised by the frontend, so the IR holds only
scalar values, array element loads/stores and structured control flow.  Every
statement carries the user's source location.  Autodiff passes map IR to IR,
and :mod:`difsci.lang.printer` prints it back as kernel-language Python.

Expressions (immutable, each with a scalar type ``ty``)::

    Const(value)  Var(name)  Load(arr, idx)  Shape(arr, dim)  Op(op, args)

Statements::

    Assign(target, value)           local scalar variable
    Store(arr, idx, value, mode)    mode: 'set' | 'add' | 'min' | 'max'  (add/min/max are atomic)
    If(cond, body, orelse)
    For(var, start, stop, body)     serial loop, step 1 (``reverse=True`` counts down)
    ParFor(vars, bounds, body)      parallel loop nest (top level of a kernel)
    TimeLoop(var, start, stop, body)  a ``ds.serial`` loop holding ParFors
    While(cond, body)  Break()  Continue()
    Push(value, stack) / Pop(target, stack)   the autodiff value stacks
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from .source import Loc
from .types import Scalar


# ---------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Expr:
    ty: Scalar


@dataclass(frozen=True)
class Const(Expr):
    value: object


@dataclass(frozen=True)
class Var(Expr):
    name: str


@dataclass(frozen=True)
class Load(Expr):
    arr: str
    idx: tuple


@dataclass(frozen=True)
class Shape(Expr):
    arr: str
    dim: int


@dataclass(frozen=True)
class Op(Expr):
    op: str
    args: tuple


# ----------------------------------------------------------------- statements
@dataclass
class Stmt:
    loc: Loc | None = field(default=None, kw_only=True)


@dataclass
class Assign(Stmt):
    target: str
    value: Expr
    ty: Scalar = None


@dataclass
class Store(Stmt):
    arr: str
    idx: tuple
    value: Expr
    mode: str = "set"


@dataclass
class If(Stmt):
    cond: Expr
    body: list
    orelse: list


@dataclass
class For(Stmt):
    var: str
    start: Expr
    stop: Expr
    body: list
    reverse: bool = False


@dataclass
class ParFor(Stmt):
    vars: tuple
    bounds: tuple          # ((start, stop), ...)
    body: list
    reverse_note: str = ""
    reductions: tuple = ()     # scalar sums the body adds to (``acc = acc + x``, from passes/privatize.py)
    serial_twin: bool = True   # the cpu printer may add a serial copy for small trip counts


@dataclass
class TimeLoop(Stmt):
    var: str
    start: Expr
    stop: Expr
    body: list
    reverse: bool = False


@dataclass
class While(Stmt):
    cond: Expr
    body: list


@dataclass
class Break(Stmt):
    pass


@dataclass
class Continue(Stmt):
    pass


@dataclass
class Push(Stmt):
    value: Expr
    stack: str             # 'f' (float64) or 'i' (int64)


@dataclass
class Pop(Stmt):
    target: str
    ty: Scalar
    stack: str


@dataclass
class Comment(Stmt):
    text: str


@dataclass
class MatMul(Stmt):
    """``out += op(a) @ op(b)`` on whole 2-D arrays (op = transpose when ``ta``/``tb``): BLAS."""

    a: str
    b: str
    out: str
    ta: bool = False
    tb: bool = False


# ---------------------------------------------------------- functions/kernels
@dataclass(frozen=True)
class ArrayInfo:
    """An array parameter: storage dtype, storage ndim (vector axes included), logical element."""

    dtype: Scalar
    ndim: int
    elem: object           # Scalar | Vec | Mat
    logical_ndim: int


@dataclass
class Function:
    """A typed, scalarised kernel or func.

    ``params`` lists (name, Scalar | ArrayInfo); vector parameters appear as
    their components.  ``results`` (funcs only) are expressions evaluated
    after ``body``.  ``groups`` maps each user parameter to its scalar names
    and type, so wrappers can pack/unpack vectors.
    """

    name: str
    params: list
    body: list
    results: tuple = ()
    result_type: object = None
    groups: list = field(default_factory=list)
    locals: dict = field(default_factory=dict)      # var name -> Scalar
    is_kernel: bool = True
    origin: Loc | None = None
    header: str = ""
    fresh: frozenset = frozenset()   # (adjoints) gradient arrays zero at entry whatever they hold: passes/fresh.py

    def arrays(self) -> dict:
        return {n: t for n, t in self.params if isinstance(t, ArrayInfo)}


# -------------------------------------------------------------------- helpers
def walk_stmts(stmts):
    """Every statement, depth first."""
    for s in stmts:
        yield s
        for blk in child_blocks(s):
            yield from walk_stmts(blk)


def child_blocks(s):
    if isinstance(s, If):
        return (s.body, s.orelse)
    if isinstance(s, (For, ParFor, TimeLoop, While)):
        return (s.body,)
    return ()


def walk_expr(e):
    yield e
    if isinstance(e, Op):
        for a in e.args:
            yield from walk_expr(a)
    elif isinstance(e, Load):
        for a in e.idx:
            yield from walk_expr(a)


def stmt_exprs(s):
    """Expressions a statement evaluates directly (not those of nested blocks)."""
    if isinstance(s, Assign):
        return (s.value,)
    if isinstance(s, Store):
        return tuple(s.idx) + (s.value,)
    if isinstance(s, (If, While)):
        return (s.cond,)
    if isinstance(s, (For, TimeLoop)):
        return (s.start, s.stop)
    if isinstance(s, ParFor):
        return tuple(x for b in s.bounds for x in b)
    if isinstance(s, Push):
        return (s.value,)
    return ()


def map_expr(e: Expr, fn) -> Expr:
    """Rebuild ``e`` bottom-up, replacing each node ``n`` by ``fn(n)``."""
    if isinstance(e, Op):
        e = replace(e, args=tuple(map_expr(a, fn) for a in e.args))
    elif isinstance(e, Load):
        e = replace(e, idx=tuple(map_expr(a, fn) for a in e.idx))
    return fn(e)


def vars_in(e: Expr) -> set:
    return {n.name for n in walk_expr(e) if isinstance(n, Var)}


def loads_in(e: Expr) -> list:
    return [n for n in walk_expr(e) if isinstance(n, Load)]


def assigned_vars(stmts) -> set:
    out = set()
    for s in walk_stmts(stmts):
        if isinstance(s, Assign):
            out.add(s.target)
        elif isinstance(s, Pop):
            out.add(s.target)
        elif isinstance(s, (For, TimeLoop)):
            out.add(s.var)
        elif isinstance(s, ParFor):
            out.update(s.vars)
    return out
