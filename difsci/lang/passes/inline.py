"""Inline a typed func into the function being lowered.

Before (caller):  ``f = spring_force(x[i], x[j], 1.0, k)``
After:            ``spring_force_xa_0 = x[i, 0]`` … the func's body with its
locals prefixed by its name … ``f_0 = <result 0>`` …
Each call gets its own prefix (``spring_force_``, ``spring_force2_`` …).
"""
from __future__ import annotations

import re

from .. import build as B
from .. import ir
from .. import types as T
from ..frontend.values import VV, Arr, Tup
from ..autodiff import custom
from .rename import rename_expr, rename_stmts


def inline_function(lw, fn: ir.Function, args, loc):
    prefix = _prefix(lw, fn)
    vmap = {n: prefix + n for n in fn.locals}
    amap = {}
    marker = None
    if custom.has_rule(fn):          # keep the call visible to autodiff: its rule replaces its body's derivative
        marker = custom.begin_marker(fn, loc)
        lw.emit(marker)
    for (pname, pty, names), a in zip(fn.groups, [a for a in args if _runtime(a)]):
        if isinstance(pty, ir.ArrayInfo):
            amap[pname] = a.name
            if marker is not None:
                marker.custom.params.append(None)
            continue
        comps = a.comps if isinstance(a, VV) else ([c for c in _flat(a)] if isinstance(a, Tup) else [a])
        for n, c in zip(names, comps):
            ty = fn.locals.get(n) or dict(fn.params)[n]
            vmap[n] = prefix + n
            lw.locals_out[prefix + n] = ty
            lw.emit(ir.Assign(prefix + n, B.cast(c, ty), ty, loc=loc))
        if marker is not None:
            marker.custom.params.append((pty, [prefix + n for n in names]))
    for n, ty in fn.locals.items():
        lw.locals_out[vmap[n]] = ty
    for s in rename_stmts(fn.body, vmap, amap):
        lw.emit(s)
    results = [rename_expr(r, vmap, amap) for r in fn.results]
    if marker is None:
        results = [lw.temp(r) for r in results]
    else:
        results = [_result_var(lw, r, prefix, k, vmap, marker) for k, r in enumerate(results)]
        lw.emit(custom.end_marker(marker))
    return _pack(fn.result_type, iter(results))


def _result_var(lw, r, prefix, k, vmap, marker):
    """A fresh local holding result ``k`` of a marked call (the rule's adjoint seeds read it)."""
    taken = set(vmap.values()) | set(lw.locals_out)
    name, j = f"{prefix}r{k}", 2
    while name in taken:
        name, j = f"{prefix}r{k}_{j}", j + 1
    lw.locals_out[name] = r.ty
    lw.emit(ir.Assign(name, r, r.ty))
    marker.custom.results.append((name, r.ty))
    return ir.Var(r.ty, name)


def _prefix(lw, fn):
    """``f_``, ``f2_`` … for the k-th call of ``f``, skipping any prefix that would rename one of
    ``f``'s locals onto a name the caller uses (or a component of one: ``name_0``)."""
    counts = lw.__dict__.setdefault("inline_counts", {})
    user = getattr(lw, "user_names", set())
    taken = set(lw.locals_out) | user
    while True:
        k = counts.get(fn.name, 0) + 1
        counts[fn.name] = k
        prefix = f"{fn.name}_" if k == 1 else f"{fn.name}{k}_"
        names = [prefix + n for n in list(fn.locals) + [n for _, _, ns in fn.groups for n in ns]]
        if not any(n in taken or re.sub(r"_+\d+$", "", n) in user for n in names):
            return prefix


def _runtime(a):
    from ..frontend.values import CT
    return not isinstance(a, CT)


def _flat(v):
    if isinstance(v, VV):
        return v.comps
    if isinstance(v, Tup):
        return [c for i in v.items for c in _flat(i)]
    return [v]


def _pack(rt, it):
    if rt is None:
        from ..frontend.values import CT
        return CT(None)
    if isinstance(rt, T.Scalar):
        return next(it)
    if isinstance(rt, (T.Vec, T.Mat)):
        return VV([next(it) for _ in range(rt.ncomp)], rt)
    if isinstance(rt, T.TupleType):
        return Tup([_pack(t, it) for t in rt.items])
    raise TypeError(rt)


class FunctionBuilder:
    """Builds a new func with ``base``'s parameters by inlining other funcs (for ds.hessian)."""

    def __init__(self, base: ir.Function, suffix: str):
        self.base = base
        self.name = f"{base.name}_{suffix}"
        self.body: list = []
        self.locals_out = {n: t for n, t in base.params if isinstance(t, T.Scalar)}
        self.ntemp = 0

    def emit(self, s):
        self.body.append(s)

    def temp(self, expr):
        if isinstance(expr, (ir.Const, ir.Var)):
            return expr
        name = f"_t{self.ntemp}"
        self.ntemp += 1
        self.locals_out[name] = expr.ty
        self.emit(ir.Assign(name, expr, expr.ty))
        return ir.Var(expr.ty, name)

    def param_value(self, group):
        pname, pty, names = group
        if isinstance(pty, ir.ArrayInfo):
            return Arr(pname, pty)
        vals = [ir.Var(self.locals_out[n], n) for n in names]
        return self.pack(pty, vals)

    def pack(self, ty, vals):
        if isinstance(ty, (T.Vec, T.Mat)):
            return VV(list(vals), ty)
        return vals[0]

    def inline(self, fn, args):
        return inline_function(self, fn, args, None)

    def flat(self, v):
        return _flat(v)

    def finish(self, results, rt, header):
        return ir.Function(self.name, list(self.base.params), self.body, tuple(results), rt, self.base.groups,
                           dict(self.locals_out), False, self.base.origin, header)
