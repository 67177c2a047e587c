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
