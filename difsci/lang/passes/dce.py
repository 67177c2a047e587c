"""Dead-code elimination: drop assignments to locals nothing else reads.

A variable counts as read only by statements other than its own updates, so
an adjoint nobody uses (``c_bar = c_bar + lap * _b2`` for a plain scalar
parameter) disappears together with what only it needed (``lap``).
Stores, stack pushes/pops and control flow are kept.

Before::                         After::

    lap = h[t, i + 1, j] - ...       h_bar[t, i + 1, j] += lap_bar
    c_bar = c_bar + _b2 * lap        ...
    h_bar[t, i + 1, j] += lap_bar
"""
from __future__ import annotations

from dataclasses import replace

from .. import ir


def dce(fn: ir.Function) -> ir.Function:
    body = fn.body
    while True:
        live = _reads(body, fn.results)
        new = _sweep(body, live)
        if _count(new) == _count(body):
            return replace(fn, body=new)
        body = new


def _count(stmts):
    return sum(1 for _ in ir.walk_stmts(stmts))


def _reads(stmts, results) -> set:
    live = set()
    for r in results:
        live |= ir.vars_in(r)
    for s in ir.walk_stmts(stmts):
        if isinstance(s, ir.Assign):
            live |= ir.vars_in(s.value) - {s.target}
        else:
            for e in ir.stmt_exprs(s):
                live |= ir.vars_in(e)
        if isinstance(s, (ir.For, ir.TimeLoop)):
            live.add(s.var)
        elif isinstance(s, ir.ParFor):
            live.update(s.vars)
        elif isinstance(s, ir.Pop):
            live.add(s.target)
    return live


def _sweep(stmts, live):
    out = []
    for s in stmts:
        if isinstance(s, ir.Assign) and s.target not in live:
            continue
        if isinstance(s, ir.If):
            s = replace(s, body=_sweep(s.body, live), orelse=_sweep(s.orelse, live))
            if not s.body and not s.orelse:
                continue
        elif isinstance(s, (ir.For, ir.TimeLoop, ir.ParFor)):
            s = replace(s, body=_sweep(s.body, live))
            if not s.body:
                continue
        elif isinstance(s, ir.While):
            s = replace(s, body=_sweep(s.body, live))
        out.append(s)
    return out
