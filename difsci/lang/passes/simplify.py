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


def simplify(fn: ir.Function) -> ir.Function:
    from .cse import cse
    fn = replace(fn, body=fold_zero_starts(fn.body))
    fn = propagate_copies(propagate_constants(fn))
    fn = replace(fn, body=dead_stores(fn.body, _result_vars(fn), fn.is_kernel))
    return cse(dce(fn))


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


# ----------------------------------------------------- zero accumulators
def fold_zero_starts(stmts) -> list:
    """``v = 0.0`` … ``v = v + e`` (nothing changed v between) becomes ``v = e``.

    Adjoints start every local at zero and add contributions; without
    fast-math LLVM keeps the ``0.0 +``, which cost 40% on a saxpy adjoint.
    """
    zero: set = set()
    out = []
    for s in stmts:
        if (isinstance(s, ir.Assign) and s.target in zero and isinstance(s.value, ir.Op) and s.value.op == "add"
                and isinstance(s.value.args[0], ir.Var) and s.value.args[0].name == s.target
                and s.target not in ir.vars_in(s.value.args[1])):
            s = replace(s, value=B.cast(s.value.args[1], s.ty or s.value.ty))
        if isinstance(s, ir.If):
            s = replace(s, body=fold_zero_starts(s.body), orelse=fold_zero_starts(s.orelse))
        elif ir.child_blocks(s):
            s = replace(s, body=fold_zero_starts(s.body))
        # what is known to be zero after s
        if isinstance(s, ir.Assign):
            zero.discard(s.target)
            if isinstance(s.value, ir.Const) and s.value.value == 0 and s.value.ty.is_float:
                zero.add(s.target)
        elif isinstance(s, ir.Pop):
            zero.discard(s.target)
        elif ir.child_blocks(s):
            zero -= ir.assigned_vars([s])
        out.append(s)
    return out


# --------------------------------------------------------------- copies
def _assign_counts(stmts) -> dict:
    count = {}
    for s in ir.walk_stmts(stmts):
        for name in _targets(s):
            count[name] = count.get(name, 0) + 1
    return count


def propagate_copies(fn: ir.Function) -> ir.Function:
    """``x = y`` with both assigned once (y possibly a parameter): use ``y`` for ``x``.

    Inlining copies every argument into a parameter local; without this, the
    same ``tanh(a0)`` under four parameter names is four libm calls.  Only when
    ``y`` is set earlier in the same block and ``x`` is read nowhere but after
    the copy in that block (so no loop iteration can see an older value).
    """
    count = _assign_counts(fn.body)
    params = {n for n, _ in fn.params}
    total = _read_counts(fn.body, fn.results)
    copies = {}
    _find_copies(fn.body, count, params, total, copies)
    if not copies:
        return fn

    def root(n):
        seen = set()
        while n in copies and n not in seen:
            seen.add(n)
            n = copies[n]
        return n
    vmap = {k: root(k) for k in copies}
    from .rename import rename_expr, rename_stmts
    body = _drop_self_copies(rename_stmts(fn.body, vmap, {}))
    return replace(fn, body=body, results=tuple(rename_expr(r, vmap, {}) for r in fn.results))


def _read_counts(stmts, results=()) -> dict:
    out = {}
    for s in ir.walk_stmts(stmts):
        for e in ir.stmt_exprs(s):
            for n in ir.walk_expr(e):
                if isinstance(n, ir.Var):
                    out[n.name] = out.get(n.name, 0) + 1
    for r in results:
        for n in ir.walk_expr(r):
            if isinstance(n, ir.Var):
                out[n.name] = out.get(n.name, 0) + 1
    return out


def _find_copies(stmts, count, params, total, copies):
    set_here = set()
    cands = {k for k, s in enumerate(stmts)
             if isinstance(s, ir.Assign) and isinstance(s.value, ir.Var) and count.get(s.target) == 1
             and s.target not in params and s.value.ty == s.ty}
    after = {}
    if cands:      # reads of each candidate in the statements after it (one backward sweep)
        names = {stmts[k].target for k in cands}
        seen: dict = {}
        for k in range(len(stmts) - 1, -1, -1):
            if k in cands:
                after[k] = seen.get(stmts[k].target, 0)
            for n, c in _read_counts([stmts[k]]).items():
                if n in names:
                    seen[n] = seen.get(n, 0) + c
    for k, s in enumerate(stmts):
        if k in cands:
            y = s.value.name
            y_ok = (y in params and y not in count) or (count.get(y) == 1 and y in set_here)
            if y_ok and after[k] == total.get(s.target, 0):
                copies[s.target] = y
        if isinstance(s, (ir.Assign, ir.Pop)):
            set_here.add(s.target)
        for b in ir.child_blocks(s):
            _find_copies(b, count, params, total, copies)


def _drop_self_copies(stmts):
    out = []
    for s in stmts:
        if isinstance(s, ir.Assign) and isinstance(s.value, ir.Var) and s.value.name == s.target:
            continue
        if isinstance(s, ir.If):
            s = replace(s, body=_drop_self_copies(s.body), orelse=_drop_self_copies(s.orelse))
        elif ir.child_blocks(s):
            s = replace(s, body=_drop_self_copies(s.body))
        out.append(s)
    return out


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
