"""Which arrays a parallel loop may update without atomics.

An array is race-free in a ParFor when every access to it (load or store)
indexes some fixed axis with exactly the prange variable: different threads
then touch disjoint slices.
"""
from __future__ import annotations

from .. import ir


def race_free_arrays(pf: ir.ParFor) -> set:
    var = pf.vars[0]
    axes: dict[str, set | None] = {}

    def visit(arr, idx):
        hits = {k for k, e in enumerate(idx) if isinstance(e, ir.Var) and e.name == var}
        axes[arr] = hits if arr not in axes else (axes[arr] & hits)

    for s in ir.walk_stmts(pf.body):
        if isinstance(s, ir.Store):
            visit(s.arr, s.idx)
        for e in ir.stmt_exprs(s):
            for ld in ir.loads_in(e):
                visit(ld.arr, ld.idx)
    # the prange variable must not be reassigned inside the body
    if var in ir.assigned_vars(pf.body):
        return set()
    return {a for a, h in axes.items() if h}


def _offset(e, var):
    """``c`` when ``e`` is ``var + c`` / ``var - c`` / ``var`` (c a constant integer), else None."""
    if isinstance(e, ir.Var) and e.name == var:
        return 0
    if isinstance(e, ir.Op) and e.op in ("add", "sub") and len(e.args) == 2:
        a, b = e.args
        if isinstance(a, ir.Var) and a.name == var and isinstance(b, ir.Const) and b.ty.is_int:
            return b.value if e.op == "add" else -b.value
        if e.op == "add" and isinstance(b, ir.Var) and b.name == var and isinstance(a, ir.Const) and a.ty.is_int:
            return a.value
    return None


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
