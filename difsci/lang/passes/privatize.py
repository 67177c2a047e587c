"""Privatise accumulations into fixed elements inside parallel loops.

``loss[None] += v`` in a parallel loop is an atomic on one address for every
iteration: contention makes it the slowest case on the CPU (NUMBA_NOTES §1).
When the index is a constant and the loop never reads that array, the sum
goes into a private scalar instead, which numba reduces across threads, and
one plain add writes it back after the loop.

Before::                                After::

    for i in prange(n):                     _acc0 = 0.0
        loss[0] += x[i] * x[i]              for i in prange(n):
                                                _acc0 = _acc0 + x[i] * x[i]
                                            loss[0] += _acc0
"""
from __future__ import annotations

from dataclasses import replace

from .. import build as B
from .. import ir
from .. import types as T


def privatize(fn: ir.Function) -> ir.Function:
    taken = set(fn.locals) | {n for n, _ in fn.params}
    new_locals = dict(fn.locals)
    body = _block(fn.body, taken, new_locals, fn.arrays())
    return replace(fn, body=body, locals=new_locals)


def _block(stmts, taken, locals_, arrays):
    out = []
    for s in stmts:
        if isinstance(s, ir.ParFor):
            out += _parfor(s, taken, locals_, arrays)
        elif isinstance(s, ir.TimeLoop):
            out.append(replace(s, body=_block(s.body, taken, locals_, arrays)))
        else:
            out.append(s)
    return out


def _candidates(body):
    loaded, bad, found = set(), set(), {}
    for s in ir.walk_stmts(body):
        for e in ir.stmt_exprs(s):
            loaded |= {ld.arr for ld in ir.loads_in(e)}
        if isinstance(s, ir.Store):
            if s.mode == "add" and all(isinstance(i, ir.Const) for i in s.idx):
                found.setdefault((s.arr, tuple(i.value for i in s.idx)), s)
            else:
                bad.add(s.arr)
    return {k: v for k, v in found.items() if k[0] not in loaded and k[0] not in bad}


def _parfor(pf, taken, locals_, arrays):
    cands = _candidates(pf.body)
    if not cands:
        return [pf]
    accs = {}
    for k, (key, st) in enumerate(sorted(cands.items(), key=lambda kv: (kv[0][0], kv[0][1]))):
        name, j = f"_acc{k}", k
        while name in taken:
            j += 1
            name = f"_acc{j}"
        taken.add(name)
        ty = arrays[key[0]].dtype
        if ty == T.f32:
            ty = T.f64      # a float32 target sums in float64 (10M f32 terms would lose ~1e-3 otherwise)
        locals_[name] = ty
        accs[key] = (name, ty, st.idx)
    # one partial per iteration, reduced by a single statement (numba's prange reduction rule)
    part = {}
    for key, (n, t, idx) in accs.items():
        p, j = n + "_i", 2
        while p in taken:
            p, j = f"{n}_i{j}", j + 1
        taken.add(p)
        t = arrays[key[0]].dtype    # one iteration's partial: the target's own type
        locals_[p] = t
        part[key] = (p, t, idx)
    body = [ir.Assign(p, B.zero(t), t, loc=pf.loc) for p, t, _ in part.values()]
    body += _rewrite(pf.body, part)
    body += [ir.Assign(n, B.add(ir.Var(t, n), B.cast(ir.Var(part[key][1], part[key][0]), t)), t, loc=pf.loc)
             for key, (n, t, _) in accs.items()]
    pre = [ir.Assign(n, B.zero(t), t, loc=pf.loc) for n, t, _ in accs.values()]
    post = [ir.Store(key[0], idx, B.cast(ir.Var(t, n), arrays[key[0]].dtype), "add", loc=pf.loc)
            for key, (n, t, idx) in accs.items()]
    return pre + [replace(pf, body=body, reductions=tuple(n for n, _, _ in accs.values()))] + post


def _rewrite(stmts, accs):
    out = []
    for s in stmts:
        if isinstance(s, ir.Store) and s.mode == "add":
            key = (s.arr, tuple(i.value for i in s.idx)) if all(isinstance(i, ir.Const) for i in s.idx) else None
            if key in accs:
                n, t, _ = accs[key]
                out.append(ir.Assign(n, B.add(ir.Var(t, n), B.cast(s.value, t)), t, loc=s.loc))
                continue
        blocks = ir.child_blocks(s)
        if blocks:
            if isinstance(s, ir.If):
                s = replace(s, body=_rewrite(s.body, accs), orelse=_rewrite(s.orelse, accs))
            else:
                s = replace(s, body=_rewrite(s.body, accs))
        out.append(s)
    return out
