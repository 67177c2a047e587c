"""Common subexpressions: compute a repeated call once per straight-line block.

Derivative rules repeat their inputs' functions (``tanh(z)`` in the value and
in ``1 - tanh(z)**2``); nested derivatives repeat them many times over, and
libm calls are not merged by LLVM.  A repeated math call (or division) whose
inputs are not reassigned in between is stored in a temporary.

Before::                                  After::

    y = tanh(z)                               _c0 = tanh(z)
    dy = (1.0 - tanh(z) * tanh(z)) * dz       y = _c0
                                              dy = (1.0 - _c0 * _c0) * dz
"""
from __future__ import annotations

from dataclasses import replace

from .. import ir
from ..primitives import PRIMS

EXPENSIVE = set(PRIMS) - {"abs", "sign", "min", "max", "floor", "ceil"} | {"div", "pow", "mod"}


def cse(fn: ir.Function) -> ir.Function:
    taken = set(fn.locals) | {n for n, _ in fn.params}
    locals_ = dict(fn.locals)
    counter = [0]
    body, results = _block(fn.body, list(fn.results), taken, locals_, counter)
    return replace(fn, body=body, results=tuple(results), locals=locals_)


def _candidates(e):
    out = []
    for n in ir.walk_expr(e):
        if isinstance(n, ir.Op) and n.op in EXPENSIVE and n.ty.is_float:
            out.append(n)
    return out


def _deps(e):
    vs = ir.vars_in(e)
    arrs = {ld.arr for ld in ir.loads_in(e)}
    return vs, arrs


def _kills(s):
    """(variables, arrays) a statement may change."""
    if isinstance(s, (ir.Assign, ir.Pop)):
        return {s.target}, set()
    if isinstance(s, ir.Store):
        return set(), {s.arr}
    if isinstance(s, ir.MatMul):
        return set(), {s.out}
    blocks = ir.child_blocks(s)
    if blocks:
        vs, arrs = set(), set()
        for b in blocks:
            vs |= ir.assigned_vars(b)
            for x in ir.walk_stmts(b):
                if isinstance(x, ir.Store):
                    arrs.add(x.arr)
                elif isinstance(x, ir.MatMul):
                    arrs.add(x.out)
        if isinstance(s, (ir.For, ir.TimeLoop)):
            vs.add(s.var)
        if isinstance(s, ir.ParFor):
            vs.update(s.vars)
        return vs, arrs
    return set(), set()


def _exprs_of(s):
    """Expressions of ``s`` evaluated at its own level (nested blocks excluded)."""
    return list(ir.stmt_exprs(s))


def _block(stmts, results, taken, locals_, counter):
    # count each candidate's uses until something it depends on changes
    out = []
    avail: dict = {}          # expr -> Var
    for k, s in enumerate(stmts):
        exprs = _exprs_of(s)
        for e in exprs:
            for c in _candidates(e):
                if c in avail:
                    continue
                if _uses_ahead(c, stmts, k, results) >= 2:
                    name, j = f"_c{counter[0]}", counter[0]
                    while name in taken:
                        j += 1
                        name = f"_c{j}"
                    counter[0] = j + 1
                    taken.add(name)
                    locals_[name] = c.ty
                    out.append(ir.Assign(name, _sub(c, avail), c.ty, loc=s.loc))
                    avail[c] = ir.Var(c.ty, name)
        s = _rewrite(s, avail)
        blocks = ir.child_blocks(s)
        if blocks:
            s = _recurse(s, taken, locals_, counter)
        out.append(s)
        vs, arrs = _kills(s)
        if vs or arrs:
            for c in list(avail):
                cv, ca = _deps(c)
                if cv & vs or ca & arrs or avail[c].name in vs:
                    del avail[c]
    results = [_sub(r, avail) for r in results]
    return out, results


def _uses_ahead(c, stmts, k, results):
    cv, ca = _deps(c)
    n = 0
    for s in stmts[k:]:
        for e in _exprs_of(s):
            n += sum(1 for x in ir.walk_expr(e) if x == c)
        vs, arrs = _kills(s)
        if (cv & vs) or (ca & arrs):
            return n
    for r in results:
        n += sum(1 for x in ir.walk_expr(r) if x == c)
    return n


def _sub(e, avail):
    if not avail:
        return e
    return ir.map_expr(e, lambda n: avail.get(n, n)) if e not in avail else avail[e]


def _rewrite(s, avail):
    if not avail:
        return s
    S = lambda e: _sub(e, avail)  # noqa: E731
    if isinstance(s, ir.Assign):
        return replace(s, value=S(s.value))
    if isinstance(s, ir.Store):
        return replace(s, idx=tuple(S(i) for i in s.idx), value=S(s.value))
    if isinstance(s, (ir.If, ir.While)):
        return replace(s, cond=S(s.cond))
    if isinstance(s, (ir.For, ir.TimeLoop)):
        return replace(s, start=S(s.start), stop=S(s.stop))
    if isinstance(s, ir.ParFor):
        return replace(s, bounds=tuple((S(a), S(b)) for a, b in s.bounds))
    if isinstance(s, ir.Push):
        return replace(s, value=S(s.value))
    return s


def _recurse(s, taken, locals_, counter):
    if isinstance(s, ir.If):
        return replace(s, body=_block(s.body, [], taken, locals_, counter)[0],
                       orelse=_block(s.orelse, [], taken, locals_, counter)[0])
    return replace(s, body=_block(s.body, [], taken, locals_, counter)[0])
