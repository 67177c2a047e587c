"""Which arrays a parallel loop may update without atomics.

An array is race-free in a ParFor when every store to it indexes some fixed
axis with the same ``invariant + i`` (``i`` the prange variable), and every
load does too or provably
never reads an element that any iteration stores: different threads then
touch disjoint slices.
"""
from __future__ import annotations

from .. import ir


def race_free_arrays(pf: ir.ParFor) -> set:
    """Arrays whose stores all index one fixed axis with exactly the prange variable, and whose
    loads do too or never touch an element any iteration stores (``disjoint``)."""
    var = pf.vars[0]
    # the prange variable must not be reassigned inside the body
    if var in ir.assigned_vars(pf.body):
        return set()
    varying = ir.assigned_vars(pf.body) | set(pf.vars)
    stores: dict[str, list] = {}
    loads: dict[str, list] = {}
    for s in ir.walk_stmts(pf.body):
        if isinstance(s, ir.Store):
            stores.setdefault(s.arr, []).append(s.idx)
        for e in ir.stmt_exprs(s):
            for ld in ir.loads_in(e):
                loads.setdefault(ld.arr, []).append(ld.idx)

    def axes(idx):
        return {k for k, e in enumerate(idx) if _unit_in(e, var, varying)}

    free = set()
    for arr, sts in stores.items():
        # an axis whose index is the same `invariant + var` in every store: iterations own its elements
        hits = {k for k in axes(sts[0]) if all(len(ix) == len(sts[0]) and ix[k] == sts[0][k] for ix in sts)}
        for ix in loads.get(arr, ()):
            if not all(disjoint(ix, st, varying) for st in sts):
                hits = {k for k in hits if len(ix) == len(sts[0]) and ix[k] == sts[0][k]}
        if hits:
            free.add(arr)
    return free | {a for a, lds in loads.items() if a not in stores and set.intersection(*(axes(ix) for ix in lds))}


def _unit_in(e, var, varying) -> bool:
    """``e`` is ``var`` plus an iteration-invariant term (``s * N + n`` for the prange var ``n``): two
    iterations never give it the same value."""
    def inv(x):
        return not (ir.vars_in(x) & varying) and not ir.loads_in(x)
    if isinstance(e, ir.Var):
        return e.name == var
    if isinstance(e, ir.Op) and e.op in ("add", "sub") and len(e.args) == 2 and e.ty.is_int:
        a, b = e.args
        if _unit_in(a, var, varying) and inv(b):
            return True
        return e.op == "add" and inv(a) and _unit_in(b, var, varying)
    return False


def split_const(e):
    """(base, c) with ``e == base + c`` for an integer constant ``c`` (base None: ``e`` is ``c``)."""
    if isinstance(e, ir.Const) and e.ty.is_int:
        return None, e.value
    if isinstance(e, ir.Op) and e.op in ("add", "sub") and len(e.args) == 2:
        a, b = e.args
        if isinstance(b, ir.Const) and b.ty.is_int:
            base, c = split_const(a)
            return base, c + b.value if e.op == "add" else c - b.value
        if e.op == "add" and isinstance(a, ir.Const) and a.ty.is_int:
            base, c = split_const(b)
            return base, c + a.value
    return e, 0


def disjoint(ia, ib, varying) -> bool:
    """True when indices ``ia`` and ``ib`` never name the same element, whatever the iterations they
    are evaluated in: some axis holds, in both, the same iteration-invariant base (no name in
    ``varying``) plus different constants (``h[t + 1, i, j]`` and ``h[t, i - 1, j]``)."""
    if len(ia) != len(ib):
        return False
    for a, b in zip(ia, ib):
        (ba, ca), (bb, cb) = split_const(a), split_const(b)
        if ca != cb and ba == bb and (ba is None or not (ir.vars_in(ba) & varying or ir.loads_in(ba))):
            return True
    return False


def _offset(e, var):
    """``c`` when ``e`` is ``var + c`` (c a constant integer, folded), else None."""
    base, c = split_const(e)
    return c if isinstance(base, ir.Var) and base.name == var else None


def colouring(pf: ir.ParFor, atomic: set, max_width: int = 8) -> int:
    """Phases W that make every update of the ``atomic`` arrays race-free, or 0.

    When each access to such an array indexes one fixed axis with ``i + c``
    (``i`` the prange variable, ``c`` a constant), iterations whose ``i``
    differ by W or more never touch the same element once W exceeds the
    spread of the offsets.  Running the rows ``i ≡ k (mod W)`` of each phase
    ``k`` in parallel then needs no atomics (stencil adjoints).
    """
    var = pf.vars[0]
    if not atomic or var in ir.assigned_vars(pf.body):
        return 0
    accesses: dict = {}
    for s in ir.walk_stmts(pf.body):
        if isinstance(s, ir.Store) and s.arr in atomic:
            accesses.setdefault(s.arr, []).append(s.idx)
        for e in ir.stmt_exprs(s):
            for ld in ir.loads_in(e):
                if ld.arr in atomic:
                    accesses.setdefault(ld.arr, []).append(ld.idx)
    width = 1
    for arr, idxs in accesses.items():
        best = None
        for axis in range(len(idxs[0])):
            offs = [_offset(ix[axis], var) for ix in idxs]
            if all(o is not None for o in offs):
                w = max(offs) - min(offs) + 1
                best = w if best is None else min(best, w)
        if best is None:
            return 0
        width = max(width, best)
    return width if width <= max_width else 0
