"""Simplification after a transformation: constant propagation with folding,
dead stores in straight-line code, dead code.  Keeps nested derivatives small.

Before::                         After::

    x_bar = 0.0                      x_bar2 = _b0 * y
    x_bar2 = x_bar + _b0 * y         return x_bar2
    x_bar2_bar = 0.0   (never read)
    return x_bar2
"""
from __future__ import annotations

from dataclasses import replace

from .. import build as B
from .. import ir
from ..primitives import PRIMS
from .dce import dce
from .rename import _stmt as _rename_stmt  # noqa: F401  (same traversal shape)


def simplify(fn: ir.Function) -> ir.Function:
    fn = propagate_constants(fn)
    fn = replace(fn, body=dead_stores(fn.body, _result_vars(fn), fn.is_kernel))
    return dce(fn)


def _result_vars(fn):
    out = set()
    for r in fn.results:
        out |= ir.vars_in(r)
    return out


# ------------------------------------------------------------ constants
def _single_const_assigns(stmts) -> dict:
    count, value = {}, {}
    for s in ir.walk_stmts(stmts):
        for name in _targets(s):
            count[name] = count.get(name, 0) + 1
        if isinstance(s, ir.Assign) and isinstance(s.value, ir.Const):
            value[s.target] = s.value
    return {n: value[n] for n, c in count.items() if c == 1 and n in value}


def _targets(s):
    if isinstance(s, (ir.Assign, ir.Pop)):
        return (s.target,)
    if isinstance(s, (ir.For, ir.TimeLoop)):
        return (s.var,)
    if isinstance(s, ir.ParFor):
        return s.vars
    return ()


def refold(e):
    """Rebuild ``e`` bottom-up through the folding constructors."""
    if isinstance(e, ir.Op):
        args = tuple(refold(a) for a in e.args)
        op = e.op
        try:
            if op in B.ARITH or op in B.COMPARE:
                r = B.binop(op, *args)
            elif op == "neg":
                r = B.neg(args[0])
            elif op == "select":
                r = B.select(*args)
            elif op == "cast":
                r = B.cast(args[0], e.ty)
            elif op in ("and", "or"):
                r = B.logical(op, *args)
            elif op == "not":
                r = B.lnot(args[0])
            elif op in PRIMS:
                r = B.call(op, *args)
            else:
                r = replace(e, args=args)
        except Exception:
            r = replace(e, args=args)
        return B.cast(r, e.ty) if r.ty.name != e.ty.name else r
    if isinstance(e, ir.Load):
        return replace(e, idx=tuple(refold(a) for a in e.idx))
    return e


def propagate_constants(fn: ir.Function) -> ir.Function:
    consts = _single_const_assigns(fn.body)
    params = {n for n, _ in fn.params}
    consts = {n: c for n, c in consts.items() if n not in params}
    if not consts:
        return fn

    def sub(e):
        def f(n):
            if isinstance(n, ir.Var) and n.name in consts:
                c = consts[n.name]
                return ir.Const(n.ty, c.value) if n.ty.name == c.ty.name else B.cast(c, n.ty)
            return n
        return refold(ir.map_expr(e, f))

    def block(stmts):
        out = []
        for s in stmts:
            if isinstance(s, ir.Assign):
                if s.target in consts:
                    continue
                s = replace(s, value=sub(s.value))
            elif isinstance(s, ir.Store):
                s = replace(s, idx=tuple(sub(i) for i in s.idx), value=sub(s.value))
            elif isinstance(s, ir.If):
                s = replace(s, cond=sub(s.cond), body=block(s.body), orelse=block(s.orelse))
            elif isinstance(s, (ir.For, ir.TimeLoop)):
                s = replace(s, start=sub(s.start), stop=sub(s.stop), body=block(s.body))
            elif isinstance(s, ir.ParFor):
                s = replace(s, bounds=tuple((sub(a), sub(b)) for a, b in s.bounds), body=block(s.body))
            elif isinstance(s, ir.While):
                s = replace(s, cond=sub(s.cond), body=block(s.body))
            elif isinstance(s, ir.Push):
                s = replace(s, value=sub(s.value))
            out.append(s)
        return out

    return replace(fn, body=block(fn.body), results=tuple(sub(r) for r in fn.results))


# ---------------------------------------------------------- dead stores
def dead_stores(stmts, live_out: set, keep_all_live: bool = False) -> list:
    """Drop top-level assignments whose value no later statement reads."""
    live = set(live_out)
    out = []
    for s in reversed(stmts):
        if isinstance(s, ir.Assign):
            if s.target not in live:
                continue
            live.discard(s.target)
            live |= ir.vars_in(s.value)
        elif isinstance(s, ir.Pop):
            live.discard(s.target)
        else:
            for x in ir.walk_stmts([s]):
                for e in ir.stmt_exprs(x):
                    live |= ir.vars_in(e)
                if isinstance(x, ir.Assign):
                    live.add(x.target)     # assigned inside a block: keep it (and what it reads)
                    live |= ir.vars_in(x.value)
        out.append(s)
    return list(reversed(out))
