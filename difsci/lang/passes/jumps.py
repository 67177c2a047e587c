"""Replace ``break``/``continue`` by flags, so autodiff sees structured code.

Before::                         After::

    for j in range(n):               _brk0 = False
        s = s + a[j]                 for j in range(n):
        if s > 1.0:                      if not _brk0:
            break                            _cont0 = False
        t = t * s                            s = s + a[j]
                                             if s > 1.0:
                                                 _brk0 = True
                                             if not _brk0:
                                                 t = t * s
"""
from __future__ import annotations

from dataclasses import replace

from .. import build as B
from .. import ir
from .. import types as T


def lower_jumps(stmts: list, locals_: dict) -> list:
    counter = [0]
    return _block(stmts, None, None, counter, locals_)


def _has_jump(stmts) -> bool:
    """A break/continue that belongs to the enclosing loop (not to a nested one)."""
    for s in stmts:
        if isinstance(s, (ir.Break, ir.Continue)):
            return True
        if isinstance(s, ir.If) and (_has_jump(s.body) or _has_jump(s.orelse)):
            return True
    return False


def _block(stmts, brk, cont, counter, locals_):
    out = []
    for k, s in enumerate(stmts):
        if isinstance(s, ir.Break):
            out.append(ir.Assign(brk, B.const(True), T.boolean, loc=s.loc))
            return out
        if isinstance(s, ir.Continue):
            out.append(ir.Assign(cont, B.const(True), T.boolean, loc=s.loc))
            return out
        if isinstance(s, ir.If):
            ns = replace(s, body=_block(s.body, brk, cont, counter, locals_),
                         orelse=_block(s.orelse, brk, cont, counter, locals_))
            out.append(ns)
            if _has_jump([s]) and k + 1 < len(stmts):
                rest = _block(stmts[k + 1:], brk, cont, counter, locals_)
                out.append(ir.If(B.lnot(_any_flag(brk, cont)), rest, [], loc=stmts[k + 1].loc))
                return out
            continue
        if isinstance(s, (ir.For, ir.While)):
            out.extend(_loop(s, counter, locals_))
            continue
        if isinstance(s, (ir.ParFor, ir.TimeLoop)):
            out.append(replace(s, body=_block(s.body, None, None, counter, locals_)))
            continue
        out.append(s)
    return out


def _any_flag(brk, cont):
    flags = [ir.Var(T.boolean, f) for f in (brk, cont) if f is not None]
    e = flags[0]
    for f in flags[1:]:
        e = B.logical("or", e, f)
    return e


def _loop(s, counter, locals_):
    if not _has_jump(s.body):
        return [replace(s, body=_block(s.body, None, None, counter, locals_))]
    n = counter[0]
    while f"_brk{n}" in locals_ or f"_cont{n}" in locals_:
        n += 1
    counter[0] = n + 1
    brk, cont = f"_brk{n}", f"_cont{n}"
    locals_[brk] = T.boolean
    locals_[cont] = T.boolean
    body = [ir.Assign(cont, B.const(False), T.boolean, loc=s.loc)] + _block(s.body, brk, cont, counter, locals_)
    init = ir.Assign(brk, B.const(False), T.boolean, loc=s.loc)
    if isinstance(s, ir.While):
        cond = B.logical("and", B.lnot(ir.Var(T.boolean, brk)), s.cond)
        return [init, replace(s, cond=cond, body=body)]
    guarded = [ir.If(B.lnot(ir.Var(T.boolean, brk)), body, [], loc=s.loc)]
    return [init, replace(s, body=guarded)]
