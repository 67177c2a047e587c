"""Forward mode: each float local ``x`` gets a tangent ``x_dot`` computed just
before ``x`` itself; control flow is kept as it is.  Value-stack pushes of an
inner reverse transformation push the tangent too, so forward-over-reverse
(Hessians) works.

    y = x * sin(x)      →   y_dot = x_dot * sin(x) + x * (cos(x) * x_dot)
                            y = x * sin(x)
"""
from __future__ import annotations

from dataclasses import replace

from .. import build as B
from .. import ir
from .. import types as T
from ...errors import AutodiffError
from ..primitives import partials
from . import custom


class FCtx:
    def __init__(self, fn):
        self.fn = fn
        self.locals = dict(fn.locals)
        self.used = set(self.locals) | {n for n, _ in fn.params}
        self.dots: dict = {}

    def dot(self, v):
        d = self.dots.get(v)
        if d is None:
            d, k = v + "_dot", 2
            while d in self.used:
                d, k = f"{v}_dot{k}", k + 1
            self.used.add(d)
            self.dots[v] = d
        return d

    def has_dot(self, v):
        t = self.locals.get(v)
        return t is not None and t.is_float


def tangent(ctx, e):
    """The tangent of ``e`` (None when identically zero)."""
    if isinstance(e, ir.Var):
        return ir.Var(ctx.locals[e.name], ctx.dot(e.name)) if ctx.has_dot(e.name) else None
    if not isinstance(e, ir.Op):
        return None
    if e.op == "select":
        ta, tb = tangent(ctx, e.args[1]), tangent(ctx, e.args[2])
        if ta is None and tb is None:
            return None
        z = B.zero(e.ty)
        return B.select(e.args[0], ta if ta is not None else z, tb if tb is not None else z)
    if e.op == "cast":
        t = tangent(ctx, e.args[0]) if e.ty.is_float else None
        return B.cast(t, e.ty) if t is not None else None
    tans = [tangent(ctx, a) for a in e.args]
    if all(t is None for t in tans):
        return None
    out = None
    for t, p in zip(tans, partials(e)):
        if t is None or p is None:
            continue
        term = B.mul(p, t)
        out = term if out is None else B.add(out, term)
    return B.cast(out, e.ty) if out is not None else None


def fwd_block(ctx, stmts):
    out = []
    for s in custom.group_regions(stmts):
        if isinstance(s, custom.CustomRegion):
            out += custom.fwd_region(ctx, s, fwd_block)
        else:
            out += fwd_stmt(ctx, s)
    return out


def fwd_stmt(ctx, s):
    if isinstance(s, ir.Assign):
        if ctx.has_dot(s.target):
            t = tangent(ctx, s.value)
            ty = ctx.locals[s.target]
            return [ir.Assign(ctx.dot(s.target), B.cast(t, ty) if t is not None else B.zero(ty), ty, loc=s.loc), s]
        return [s]
    if isinstance(s, ir.If):
        return [replace(s, body=fwd_block(ctx, s.body), orelse=fwd_block(ctx, s.orelse))]
    if isinstance(s, (ir.For, ir.While, ir.TimeLoop, ir.ParFor)):
        return [replace(s, body=fwd_block(ctx, s.body))]
    if isinstance(s, ir.Push):
        out = [s]
        if s.value.ty.is_float:
            t = tangent(ctx, s.value)
            out.append(ir.Push(t if t is not None else B.zero(T.f64), s.stack))
        return out
    if isinstance(s, ir.Pop):
        if ctx.has_dot(s.target):
            return [ir.Pop(ctx.dot(s.target), s.ty, s.stack), s]
        return [s]
    if isinstance(s, ir.Store):
        if s.value.ty.is_float and tangent(ctx, s.value) is not None:
            raise AutodiffError("forward mode through a store into an array is not supported", s.loc,
                                "differentiate kernels with ds.Tape; use ds.jvp on funcs that return values",
                                ctx.fn.name)
        return [s]
    return [s]


def jvp_func(fn: ir.Function) -> ir.Function:
    """``f(p...)`` → ``f_jvp(p..., p_dot...)`` returning (value, tangent)."""
    ctx = FCtx(fn)
    for n, t in fn.params:
        if isinstance(t, T.Scalar):
            ctx.locals.setdefault(n, t)
    tparams = []
    groups = list(fn.groups)
    for pname, pty, names in fn.groups:
        if isinstance(pty, ir.ArrayInfo):
            continue
        tn = [ctx.dot(n) for n in names]
        tparams += [(d, ctx.locals[n] if ctx.locals[n].is_float else T.f64) for d, n in zip(tn, names)]
        groups.append((pname + "_dot", pty if not isinstance(pty, T.Scalar) or pty.is_float else T.f64, tn))
    init = []
    for v, t in sorted(fn.locals.items()):
        if t.is_float and v not in dict(fn.params):
            init.append(ir.Assign(ctx.dot(v), B.zero(t), t))
    body = init + fwd_block(ctx, fn.body)
    for v, d in list(ctx.dots.items()):
        ctx.locals[d] = ctx.locals[v]
    tres = []
    for r in fn.results:
        t = tangent(ctx, r)
        tres.append(B.cast(t, r.ty) if t is not None and r.ty.is_float else B.zero(r.ty if r.ty.is_float else T.f64))
    rt = T.TupleType((fn.result_type, fn.result_type))
    out = ir.Function(fn.name + "_jvp", list(fn.params) + tparams, body, tuple(fn.results) + tuple(tres), rt,
                      groups, ctx.locals, False, fn.origin, f"forward mode of `{fn.name}`")
    from ..passes.simplify import simplify
    return simplify(out)
