"""Adjoint of ``ds.atomic_min`` / ``ds.atomic_max`` inside parallel loops.

The final ``a[I]`` equals the value of every operand that won.  The adjoint
``a_bar[I]`` goes to the winners, split equally between tied ones (API.md
§3); when no operand of the loop won, ``a[I]`` kept its earlier value and
``a_bar[I]`` stays where it is, for the adjoint of what wrote that value.
Counting the winners needs a pass of its own, so the adjoint of such a
parallel loop is three loops (``_cnt_a`` a zeroed scratch array the launch
supplies, see ``Function.scratch``)::

    for i in prange(n):   replay; if v == a[I]: _cnt_a[I] += 1.0      count the winners
    for i in prange(n):   ... if v == a[I]: v_bar += a_bar[I] / _cnt_a[I] ...   the adjoint proper
    for e in prange(...): if _cnt_a[e] > 0: a_bar[e] = 0; _cnt_a[e] = 0     consumed

An earlier value of ``a[I]`` that ties with a winner is not counted (it is
not known any more): the winners of the loop take the whole adjoint.
"""
from __future__ import annotations

from dataclasses import replace

from .. import build as B
from .. import ir
from .. import types as T
from ...errors import AutodiffError


def _targets(ctx, stmts) -> list:
    out = []
    for s in ir.walk_stmts(stmts):
        if isinstance(s, ir.Store) and s.mode in ("min", "max") and s.arr in ctx.active \
                and s.value.ty.is_float and s.arr not in out:
            out.append(s.arr)
    return out


def count_name(ctx, arr) -> str:
    counts = ctx.__dict__.setdefault("minmax_counts", {})
    if arr not in counts:
        counts[arr] = ctx.fresh(f"_cnt_{arr}")
    return counts[arr]


def passes(ctx, pf) -> tuple[list, list]:
    """(loops before, loops after) the adjoint of the parallel loop ``pf``."""
    targets = _targets(ctx, pf.body)
    if not targets:
        return [], []
    counts = {a: count_name(ctx, a) for a in targets}
    before = [ir.ParFor(pf.vars, pf.bounds, _replay(ctx, pf.body, counts), "count the winners of atomic min/max",
                        loc=pf.loc)]
    after = []
    arrays = ctx.fn.arrays()
    for a in targets:
        info = arrays[a]
        vs = [ctx.fresh(f"_e{d}") for d in range(info.ndim)]
        for v in vs:
            ctx.locals[v] = T.i64
        idx = tuple(ir.Var(T.i64, v) for v in vs)
        c = counts[a]
        body = [ir.If(B.compare("gt", ir.Load(T.f64, c, idx), B.Const(T.f64, 0.0)),
                      [ir.Store(ctx.active[a], idx, B.zero(info.dtype), "set"),
                       ir.Store(c, idx, B.Const(T.f64, 0.0), "set")], [])]
        bounds = tuple((B.const(0), ir.Shape(T.i64, a, d)) for d in range(info.ndim))
        after.append(ir.ParFor(tuple(vs), bounds, body, "the winners consumed the adjoint", loc=pf.loc))
    return before, after


def _replay(ctx, stmts, counts) -> list:
    """The loop body's computation of values, with each min/max store counting its winners."""
    arrays = ctx.fn.arrays()
    out = []
    for s in stmts:
        if isinstance(s, ir.Store):
            if s.mode in ("min", "max") and s.arr in counts:
                dt = arrays[s.arr].dtype
                won = B.compare("eq", B.cast(s.value, dt), ir.Load(dt, s.arr, s.idx))
                out.append(ir.If(won, [ir.Store(counts[s.arr], s.idx, B.Const(T.f64, 1.0), "add")], [], loc=s.loc))
        elif isinstance(s, ir.If):
            out.append(replace(s, body=_replay(ctx, s.body, counts), orelse=_replay(ctx, s.orelse, counts)))
        elif isinstance(s, (ir.For, ir.While)):
            out.append(replace(s, body=_replay(ctx, s.body, counts)))
        elif isinstance(s, ir.Assign):
            out.append(s)
    return out


def rev_store(ctx, s) -> tuple[list, list]:
    """The adjoint of one min/max store: the operand gets its share if it won."""
    if s.arr not in ctx.active or not s.value.ty.is_float:
        return [], []
    if not getattr(ctx, "in_par", False):
        raise AutodiffError(f"the adjoint of ds.atomic_{s.mode} is implemented inside parallel loops only", s.loc,
                            f"compute the {'minimum' if s.mode == 'min' else 'maximum'} with "
                            f"{s.mode}() in a local, or move the update into a parallel loop", ctx.fn.name)
    from .reverse import adj_expr
    dt = ctx.fn.arrays()[s.arr].dtype
    c = count_name(ctx, s.arr)
    won = B.compare("eq", B.cast(s.value, dt), ir.Load(dt, s.arr, s.idx))
    share = B.div(ir.Load(dt, ctx.active[s.arr], s.idx), ir.Load(T.f64, c, s.idx))
    body = []
    adj_expr(ctx, s.value, share, body)
    return [], ([ir.If(won, body, [], loc=s.loc)] if body else [])


def scratch_params(ctx) -> tuple[list, list]:
    """(extra adjoint parameters, (name, array it is shaped like)) for the winner counts."""
    arrays = ctx.fn.arrays()
    params, scratch = [], []
    for a, c in getattr(ctx, "minmax_counts", {}).items():
        nd = arrays[a].ndim
        params.append((c, ir.ArrayInfo(T.f64, nd, T.f64, nd)))
        scratch.append((c, a))
    return params, scratch
