"""Copy IR with variables and arrays renamed.

Before: ``x = a[i] * k``   with vmap {x: f_x, k: f_k}, amap {a: pos}
After:  ``f_x = pos[i] * f_k``
"""
from __future__ import annotations

from dataclasses import replace

from .. import ir


def rename_expr(e, vmap, amap):
    def fn(n):
        if isinstance(n, ir.Var) and n.name in vmap:
            return ir.Var(n.ty, vmap[n.name])
        if isinstance(n, ir.Load) and n.arr in amap:
            return replace(n, arr=amap[n.arr])
        if isinstance(n, ir.Shape) and n.arr in amap:
            return replace(n, arr=amap[n.arr])
        return n
    return ir.map_expr(e, fn)


def rename_stmts(stmts, vmap: dict, amap: dict) -> list:
    out = []
    for s in stmts:
        out.append(_stmt(s, vmap, amap))
    return out


def _stmt(s, vmap, amap):
    E = lambda e: rename_expr(e, vmap, amap)  # noqa: E731
    V = lambda n: vmap.get(n, n)  # noqa: E731
    R = lambda b: rename_stmts(b, vmap, amap)  # noqa: E731
    if isinstance(s, ir.Assign):
        return replace(s, target=V(s.target), value=E(s.value))
    if isinstance(s, ir.Store):
        return replace(s, arr=amap.get(s.arr, s.arr), idx=tuple(E(i) for i in s.idx), value=E(s.value))
    if isinstance(s, ir.If):
        return replace(s, cond=E(s.cond), body=R(s.body), orelse=R(s.orelse))
    if isinstance(s, (ir.For, ir.TimeLoop)):
        return replace(s, var=V(s.var), start=E(s.start), stop=E(s.stop), body=R(s.body))
    if isinstance(s, ir.ParFor):
        return replace(s, vars=tuple(V(v) for v in s.vars), bounds=tuple((E(a), E(b)) for a, b in s.bounds),
                       body=R(s.body))
    if isinstance(s, ir.While):
        return replace(s, cond=E(s.cond), body=R(s.body))
    if isinstance(s, ir.Push):
        return replace(s, value=E(s.value))
    if isinstance(s, ir.Pop):
        return replace(s, target=V(s.target))
    if isinstance(s, ir.MatMul):
        return replace(s, a=amap.get(s.a, s.a), b=amap.get(s.b, s.b), out=amap.get(s.out, s.out))
    if isinstance(s, ir.Comment) and (hasattr(s, "custom") or hasattr(s, "custom_end")):
        from ..autodiff.custom import rename_marker
        return rename_marker(s, vmap)
    return replace(s)
