"""Drop value-stack saves that nothing reads back.

Store-all pushes a local before each overwrite so the adjoint can restore
it.  A restored value is only ever read by adjoint statements; when none of
them reads a local (an accumulator ``s = s + x[i] * w[i]`` whose adjoint
needs only ``s_bar``), its pushes and pops go.  This keeps reductions in
inner loops free of per-iteration stack traffic.
"""
from __future__ import annotations

from dataclasses import replace

from .. import ir


def _reads(stmts) -> set:
    out = set()
    for s in ir.walk_stmts(stmts):
        for e in ir.stmt_exprs(s):
            out |= ir.vars_in(e)
    return out


def drop_unread_saves(fwd: list, bwd: list, stacks: set) -> tuple[list, list]:
    read = _reads(bwd)
    pushed = {s.value.name for s in ir.walk_stmts(fwd)
              if isinstance(s, ir.Push) and s.stack in stacks and isinstance(s.value, ir.Var)}
    useless = pushed - read
    if not useless:
        return fwd, bwd

    def keep_push(s):
        return not (isinstance(s, ir.Push) and s.stack in stacks and isinstance(s.value, ir.Var)
                    and s.value.name in useless)

    def keep_pop(s):
        return not (isinstance(s, ir.Pop) and s.stack in stacks and s.target in useless)

    return _filter(fwd, keep_push), _filter(bwd, keep_pop)


def _filter(stmts, keep):
    out = []
    for s in stmts:
        if not keep(s):
            continue
        if isinstance(s, ir.If):
            s = replace(s, body=_filter(s.body, keep), orelse=_filter(s.orelse, keep))
        elif isinstance(s, (ir.For, ir.While, ir.TimeLoop, ir.ParFor)):
            s = replace(s, body=_filter(s.body, keep))
        out.append(s)
    return out
