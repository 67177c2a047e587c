"""Reverse mode: a region of IR becomes a forward replay followed by the
adjoint statements in reverse order.

Locals that are overwritten (assigned twice, or inside a loop) are saved on a
value stack before each overwrite and restored while going backwards
(Tapenade's store-all); branch outcomes and loop trip counts are saved the
same way.  Global writes are not replayed: by the access rule (API.md §5) an
element read by the kernel still holds the value that was read.  Each
transformation uses stacks of its own level, so an adjoint can be
differentiated again.

    y[i] = a * sin(x[i])        →   # adjoint of k.py:7  y[i] = a * sin(x[i])
                                    _b0 = y_bar[i]
                                    y_bar[i] = 0.0
                                    a_bar = a_bar + _b0 * sin(x[i])
                                    x_bar[i] += _b0 * a * cos(x[i])
"""
from __future__ import annotations

import re

from .. import build as B
from .. import ir
from .. import types as T
from ...errors import AutodiffError
from ..primitives import partials
from ..passes.jumps import lower_jumps
from . import custom, minmax
from .custom import group_regions
from ..passes.ssa import ssa_straight
from .saves import drop_unread_saves


class Ctx:
    def __init__(self, fn: ir.Function, active: dict, level: int):
        self.fn = fn
        self.locals = dict(fn.locals)
        for n, t in fn.params:
            if isinstance(t, T.Scalar):
                self.locals.setdefault(n, t)
        self.active = active            # array name -> bar array name
        self.level = level
        self.ntmp = 0
        self.save: set = set()
        self.used = set(self.locals) | {n for n, _ in fn.params} | set(active.values())
        self.bars: dict = {}

    # names: fresh ones never collide with the function's own (an adjoint of an adjoint has x_bar already)
    def fresh(self, base):
        name, k = base, 2
        while name in self.used:
            name = f"{base}{k}"
            k += 1
        self.used.add(name)
        return name

    def bar(self, v):
        b = self.bars.get(v)
        if b is None:
            b = self.bars[v] = self.fresh(v + "_bar")
        return b

    def has_bar(self, v):
        t = self.locals.get(v)
        return t is not None and t.is_float

    def tmp(self, ty, prefix="_b"):
        name = self.fresh(f"{prefix}{self.ntmp}")
        self.ntmp += 1
        self.locals[name] = ty
        return name

    def stack(self, ty):
        # a parallel loop's iterations keep stacks of their own ("fp1"), never the
        # function's ("f1"): a ds.serial step or top-level code may hold values there
        par = "p" if getattr(self, "in_par", False) else ""
        return ("f" if ty.is_float else "i") + par + str(self.level)

    def active_expr(self, e) -> bool:
        for n in ir.walk_expr(e):
            if isinstance(n, ir.Var) and self.has_bar(n.name):
                return True
            if isinstance(n, ir.Load) and n.arr in self.active:
                return True
        return False


# ------------------------------------------------------------- expressions
def adj_expr(ctx: Ctx, e, seed, out: list, result=None):
    """Append statements adding ``seed`` × d e / d (each input) to the inputs' adjoints."""
    if not ctx.active_expr(e) or (isinstance(seed, ir.Const) and seed.value == 0):
        return
    if isinstance(e, ir.Var):
        b = ctx.bar(e.name)
        bt = ctx.locals[e.name]
        out.append(ir.Assign(b, B.add(ir.Var(bt, b), B.cast(seed, bt)), bt))
        return
    if isinstance(e, ir.Load):
        bar = ctx.active[e.arr]
        out.append(ir.Store(bar, e.idx, seed, "add"))
        return
    if not isinstance(e, ir.Op):
        return
    if e.op == "select":
        c, a, b = e.args
        tb, fb = [], []
        adj_expr(ctx, a, seed, tb)
        adj_expr(ctx, b, seed, fb)
        out.append(ir.If(c, tb, fb))
        return
    if e.op == "cast":
        if e.ty.is_float and e.args[0].ty.is_float:
            adj_expr(ctx, e.args[0], B.cast(seed, e.args[0].ty), out)
        return
    if e.op == "mul" and e.args[0] == e.args[1]:
        # x * x: one contribution 2 x seed (exactly the sum of the two), not two
        a = e.args[0]
        adj_expr(ctx, a, B.mul(seed, B.mul(B.const(2.0, a.ty) if a.ty.is_float else B.const(2), a)), out)
        return
    parts = partials(e, result if result is not None else e)
    live = [(a, p) for a, p in zip(e.args, parts) if p is not None and ctx.active_expr(a)]
    if len(live) > 1 and not isinstance(seed, (ir.Var, ir.Const)):
        name = ctx.tmp(seed.ty)
        out.append(ir.Assign(name, seed, seed.ty))
        seed = ir.Var(seed.ty, name)
    for a, p in live:
        adj_expr(ctx, a, B.mul(seed, p), out)


# -------------------------------------------------------------- statements
def _count_assign(stmts, counts, in_loop, loopvars):
    for s in stmts:
        if isinstance(s, (ir.Assign, ir.Pop)):
            counts[s.target] = counts.get(s.target, 0) + (2 if in_loop else 1)
        elif isinstance(s, ir.If):
            _count_assign(s.body, counts, in_loop, loopvars)
            _count_assign(s.orelse, counts, in_loop, loopvars)
        elif isinstance(s, (ir.For, ir.TimeLoop)):
            loopvars.add(s.var)
            _count_assign(s.body, counts, True, loopvars)
        elif isinstance(s, ir.While):
            _count_assign(s.body, counts, True, loopvars)


def saved_vars(stmts, defined=()) -> set:
    """Locals whose old value an overwrite destroys: assigned twice, in a loop, or defined on entry."""
    counts, loopvars = {v: 1 for v in defined}, set()
    _count_assign(stmts, counts, False, loopvars)
    return {v for v, c in counts.items() if c > 1}


def rev_block(ctx: Ctx, stmts):
    fwd, bwd = [], []
    prev = None
    for s in group_regions(stmts):
        f, b = rev_stmt(ctx, s)
        fwd += f
        if b and s.loc is not None and not isinstance(s, (ir.ParFor, ir.TimeLoop)):
            same = prev is not None and (prev.filename, prev.line) == (s.loc.filename, s.loc.line)
            if same and bwd and isinstance(bwd[0], ir.Comment):
                bwd = bwd[1:]      # one "adjoint of" comment per source line
            text = (s.loc.source_line() or "").strip()
            b = [ir.Comment(f"adjoint of {s.loc.short()}  {text}", loc=s.loc)] + b
        prev = s.loc
        bwd = b + bwd
    return fwd, bwd


def _save(ctx, var, fwd, bwd_after):
    if var in ctx.save:
        ty = ctx.locals[var]
        fwd.append(ir.Push(ir.Var(ty, var), ctx.stack(ty)))
        bwd_after.append(ir.Pop(var, ty, ctx.stack(ty)))


def rev_stmt(ctx: Ctx, s):
    kind = type(s).__name__
    return globals()["_rev_" + kind](ctx, s)


def _rev_Comment(ctx, s):
    return [], []


def _rev_CustomRegion(ctx, s):
    return custom.rev_region(ctx, s, rev_block, _save)


def _rev_Assign(ctx, s):
    x, e = s.target, s.value
    fwd, restore = [], []
    _save(ctx, x, fwd, restore)
    fwd.append(s)
    bwd = []
    if ctx.has_bar(x) and ctx.active_expr(e):
        xt = ctx.locals[x]
        xb = ir.Var(xt, ctx.bar(x))
        if x in ir.vars_in(e):
            t = ctx.tmp(xt)
            bwd += [ir.Assign(t, xb, xt), ir.Assign(xb.name, B.zero(xt), xt)]
            bwd += restore
            adj_expr(ctx, e, ir.Var(xt, t), bwd)
            return fwd, bwd
        adj_expr(ctx, e, xb, bwd, result=ir.Var(xt, x) if isinstance(e, ir.Op) else None)
        bwd.append(ir.Assign(xb.name, B.zero(xt), xt))
    elif ctx.has_bar(x):
        bwd.append(ir.Assign(ctx.bar(x), B.zero(ctx.locals[x]), ctx.locals[x]))
    return fwd, bwd + restore


def _rev_Store(ctx, s):
    if s.mode in ("min", "max"):
        return minmax.rev_store(ctx, s)
    if s.arr not in ctx.active or not s.value.ty.is_float:
        return [], []
    bar = ctx.active[s.arr]
    dt = s.value.ty
    if s.mode == "add":
        bwd = []
        adj_expr(ctx, s.value, ir.Load(dt, bar, s.idx), bwd)
        return [], bwd
    t = ctx.tmp(dt)
    bwd = [ir.Assign(t, ir.Load(dt, bar, s.idx), dt), ir.Store(bar, s.idx, B.zero(dt), "set")]
    adj_expr(ctx, s.value, ir.Var(dt, t), bwd)
    return [], bwd


def _rev_If(ctx, s):
    c = ctx.tmp(T.boolean, "_c")
    ff, fb = rev_block(ctx, s.body)
    of, ob = rev_block(ctx, s.orelse)
    fwd = [ir.Assign(c, s.cond, T.boolean, loc=s.loc), ir.If(ir.Var(T.boolean, c), ff, of, loc=s.loc)]
    restore = []
    if ctx.in_loop:
        ctx.save.add(c)
        _save(ctx, c, fwd, restore)
        # the push must come after the branch ran: move it to the end
    bwd = restore + [ir.If(ir.Var(T.boolean, c), fb, ob, loc=s.loc)] if (fb or ob) else restore
    return fwd, bwd


def _bounds(ctx, s, fwd, after, bwd_first):
    """Evaluate the bounds once into fresh temporaries.  Inside another loop they are
    saved *after* the loop ran (``after``), so that in the adjoint they sit on top of
    the values the loop's body pushed and are restored before the reversed loop."""
    lo = ctx.tmp(T.i64, "_lo")
    hi = ctx.tmp(T.i64, "_hi")
    fwd += [ir.Assign(lo, s.start, T.i64), ir.Assign(hi, s.stop, T.i64)]
    if ctx.in_loop:
        for v in (lo, hi):
            ctx.save.add(v)
        rest = []
        _save(ctx, lo, after, rest)
        _save(ctx, hi, after, rest)
        bwd_first += list(reversed(rest))
    return ir.Var(T.i64, lo), ir.Var(T.i64, hi)


def _rev_For(ctx, s, cls=ir.For):
    fwd, after, pre = [], [], []
    lo, hi = _bounds(ctx, s, fwd, after, pre)
    saved = ctx.in_loop
    ctx.in_loop = True
    bf, bb = rev_block(ctx, s.body)
    ctx.in_loop = saved
    restore = []
    _save(ctx, s.var, fwd, restore)
    if bf:
        fwd.append(cls(s.var, lo, hi, bf, reverse=s.reverse, loc=s.loc))
    fwd += after
    bwd = pre + ([cls(s.var, lo, hi, bb, reverse=not s.reverse, loc=s.loc)] if bb else []) + restore
    return fwd, bwd


def _rev_TimeLoop(ctx, s):
    return _rev_For(ctx, s, ir.TimeLoop)


def _rev_While(ctx, s):
    n = ctx.tmp(T.i64, "_n")
    saved = ctx.in_loop
    ctx.in_loop = True
    bf, bb = rev_block(ctx, s.body)
    ctx.in_loop = saved
    fwd = [ir.Assign(n, B.const(0), T.i64), ir.While(s.cond, bf + [
        ir.Assign(n, B.add(ir.Var(T.i64, n), B.const(1)), T.i64)], loc=s.loc)]
    restore = []
    if ctx.in_loop:
        ctx.save.add(n)
        _save(ctx, n, fwd, restore)
    k = ctx.tmp(T.i64, "_k")
    bwd = restore + [ir.For(k, B.const(0), ir.Var(T.i64, n), bb, reverse=True, loc=s.loc)]
    return fwd, bwd


def _bar_stack(ctx, stack):
    """Adjoints of the values on an inner stack travel on a stack of their own (stacks interleave)."""
    return f"{stack}_b{ctx.level}"


def _rev_Push(ctx, s):
    # an inner transformation's push: replayed forward; its adjoint pops a bar
    bwd = []
    if s.value.ty.is_float and ctx.active_expr(s.value):
        t = ctx.tmp(T.f64)
        bwd.append(ir.Pop(t, T.f64, _bar_stack(ctx, s.stack)))
        adj_expr(ctx, s.value, ir.Var(T.f64, t), bwd)
    return [s], bwd


def _rev_Pop(ctx, s):
    fwd, restore = [], []
    _save(ctx, s.target, fwd, restore)
    fwd.append(s)
    bwd = []
    if ctx.has_bar(s.target):
        t = ctx.locals[s.target]
        bwd += [ir.Push(ir.Var(t, ctx.bar(s.target)), _bar_stack(ctx, s.stack)),
                ir.Assign(ctx.bar(s.target), B.zero(t), t)]
    return fwd, bwd + restore


def _rev_ParFor(ctx, s):
    outer_par = getattr(ctx, "in_par", False)
    ctx.in_par = True
    try:
        body = _one_reduction_each(ctx, s, region(ctx, s.body))
    finally:
        ctx.in_par = outer_par
    note = "adjoint: locals recomputed per iteration" + (
        "; overwritten ones kept on a per-iteration value stack" if any(isinstance(x, ir.Push) for x in body) else "")
    before, after = minmax.passes(ctx, s)       # atomic min/max: count the winners first
    return [], before + [ir.ParFor(s.vars, s.bounds, body, note, loc=s.loc)] + after


def _one_reduction_each(ctx, pf, body):
    """Adjoints of variables from outside the loop are summed per iteration, then reduced once.

    numba reduces a scalar across a prange only if one statement updates it.
    """
    inner = _region_assigned(pf.body) | set(pf.vars)
    outer = {b: v for v, b in ctx.bars.items() if v not in inner}
    hit = sorted(set(outer) & {x.target for x in ir.walk_stmts(body) if isinstance(x, ir.Assign)})
    if not hit:
        return body
    from ..passes.rename import rename_stmts
    vmap = {b: ctx.fresh(b + "_i") for b in hit}
    body = rename_stmts(body, vmap, {})
    init, fold = [], []
    for b in hit:
        t = ctx.locals[outer[b]]
        ctx.locals[vmap[b]] = t
        init.append(ir.Assign(vmap[b], B.zero(t), t))
        fold.append(ir.Assign(b, B.add(ir.Var(t, b), ir.Var(t, vmap[b])), t))
    return init + body + fold


def _rev_MatMul(ctx, s):
    """out += op(a) @ op(b): the adjoints are matrix products again (one BLAS call each)."""
    if s.out not in ctx.active:
        return [], []
    cb = ctx.active[s.out]
    bwd = []
    if s.a in ctx.active:       # a_bar += out_bar @ op(b)^T  (transposed back when a was)
        bwd.append(ir.MatMul(s.b, cb, ctx.active[s.a], ta=s.tb, tb=True, loc=s.loc) if s.ta else
                   ir.MatMul(cb, s.b, ctx.active[s.a], ta=False, tb=not s.tb, loc=s.loc))
    if s.b in ctx.active:       # b_bar += op(a)^T @ out_bar
        bwd.append(ir.MatMul(cb, s.a, ctx.active[s.b], ta=True, tb=s.ta, loc=s.loc) if s.tb else
                   ir.MatMul(s.a, cb, ctx.active[s.b], ta=not s.ta, tb=False, loc=s.loc))
    return [], bwd


def _rev_Break(ctx, s):
    raise AutodiffError("internal: break reached autodiff", s.loc)


_rev_Continue = _rev_Break


# ----------------------------------------------------------------- regions
def region(ctx: Ctx, stmts, defined=()):
    """Forward replay + adjoint of ``stmts`` run by one thread, with its own inits."""
    outer_save, outer_loop = ctx.save, getattr(ctx, "in_loop", False)
    stmts, _ = ssa_straight(stmts, defined, ctx.locals, ctx.used)
    ctx.save = saved_vars(stmts, defined)
    ctx.in_loop = False
    fwd, bwd = rev_block(ctx, stmts)
    fwd, bwd = drop_unread_saves(fwd, bwd, {ctx.stack(T.f64), ctx.stack(T.i64)})
    save = ctx.save
    ctx.save, ctx.in_loop = outer_save, outer_loop
    assigned = _region_assigned(stmts)
    init = []
    for v in sorted(assigned | save):
        t = ctx.locals.get(v)
        if t is None:
            continue
        if v in save and v not in defined:
            init.append(ir.Assign(v, B.zero(t), t))
        if t.is_float:
            init.append(ir.Assign(ctx.bar(v), B.zero(t), t))
    for v in sorted(assigned):
        if ctx.has_bar(v):
            ctx.locals[ctx.bar(v)] = ctx.locals[v]
    return init + fwd + bwd


def _region_assigned(stmts) -> set:
    out = set()
    for s in stmts:
        if isinstance(s, (ir.Assign, ir.Pop)):
            out.add(s.target)
        elif isinstance(s, ir.ParFor):
            continue
        for b in ir.child_blocks(s):
            if not isinstance(s, ir.ParFor):
                out |= _region_assigned(b)
    return out


def next_level(fn: ir.Function) -> int:
    lv = 0
    for s in ir.walk_stmts(fn.body):
        if isinstance(s, (ir.Push, ir.Pop)):
            lv = max(lv, int(re.search(r"(\d+)$", s.stack).group(1)))
    return lv + 1


def reverse_kernel(fn: ir.Function, active: list) -> ir.Function:
    """The adjoint kernel: ``fn``'s params followed by ``<a>_bar`` for each active array."""
    body = lower_jumps(fn.body, fn.locals)
    taken = {n for n, _ in fn.params} | set(fn.locals)
    amap = {}
    for a in active:
        b, k = a + "_bar", 2
        while b in taken:
            b, k = f"{a}_bar{k}", k + 1
        amap[a] = b
        taken.add(b)
    ctx = Ctx(fn, amap, next_level(fn))
    ctx.in_loop = False
    stmts = region(ctx, body, [n for n, t in fn.params if isinstance(t, T.Scalar)])
    for n, t in fn.params:
        if isinstance(t, T.Scalar) and t.is_float:
            stmts.insert(0, ir.Assign(ctx.bar(n), B.zero(t), t))
            ctx.locals[ctx.bar(n)] = t
    arrays = fn.arrays()
    params = list(fn.params) + [(amap[a], arrays[a]) for a in active]
    extra, scratch = minmax.scratch_params(ctx)
    header = f"reverse mode of `{fn.name}`"
    out = ir.Function(fn.name + "_adjoint", params + extra, stmts, (), None, fn.groups, ctx.locals, True,
                      fn.origin, header)
    out.scratch = scratch       # zeroed float64 arrays shaped like these arguments, passed after the bars
    return out


def reverse_func(fn: ir.Function, wrt: list) -> ir.Function:
    """d(result)/d(params in groups ``wrt``) of a scalar-valued func."""
    if len(fn.results) != 1 or not fn.results[0].ty.is_float:
        raise AutodiffError(f"ds.grad needs a func returning one float; `{fn.name}` returns {fn.result_type}",
                            fn.origin, "use ds.jvp for vector-valued funcs", fn.name)
    body = lower_jumps(fn.body, fn.locals)
    ctx = Ctx(fn, {}, next_level(fn))
    ctx.in_loop = False
    res = fn.results[0]
    rname = ctx.fresh("_result")
    ctx.locals[rname] = res.ty
    seed = []
    full = body + [ir.Assign(rname, res, res.ty)]
    full, _ = ssa_straight(full, [n for n, t in fn.params if isinstance(t, T.Scalar)], ctx.locals, ctx.used)
    ctx.save = saved_vars(full, [n for n, t in fn.params if isinstance(t, T.Scalar)])
    ctx.in_loop = False
    fwd, bwd = rev_block(ctx, full)
    fwd, bwd = drop_unread_saves(fwd, bwd, {ctx.stack(T.f64), ctx.stack(T.i64)})
    init = []
    for v in sorted(_region_assigned(full) | {n for n, t in fn.params if isinstance(t, T.Scalar)}):
        t = ctx.locals.get(v)
        if t is None:
            continue
        if v in ctx.save and v not in dict(fn.params):
            init.append(ir.Assign(v, B.zero(t), t))
        if t.is_float:
            init.append(ir.Assign(ctx.bar(v), B.zero(t), t))
            ctx.locals[ctx.bar(v)] = t
    seed = [ir.Assign(ctx.bar(rname), B.Const(res.ty, 1.0), res.ty)]
    stmts = init + fwd + seed + bwd
    results, rtypes = [], []
    for gi in wrt:
        pname, pty, names = fn.groups[gi]
        if isinstance(pty, ir.ArrayInfo):
            raise AutodiffError(f"ds.grad with respect to the array `{pname}` is not supported",
                                fn.origin, "differentiate kernels through ds.Tape instead", fn.name)
        for n in names:
            t = ctx.locals[n]
            results.append(ir.Var(t, ctx.bar(n)) if t.is_float else B.zero(T.f64))
        rtypes.append(pty if not (isinstance(pty, T.Scalar) and not pty.is_float) else T.f64)
    rt = rtypes[0] if len(rtypes) == 1 else T.TupleType(tuple(rtypes))
    name = fn.name + "_grad"
    out = ir.Function(name, list(fn.params), stmts, tuple(results), rt, fn.groups, ctx.locals, False,
                      fn.origin, f"gradient of `{fn.name}`")
    from ..passes.simplify import simplify
    return simplify(out)
