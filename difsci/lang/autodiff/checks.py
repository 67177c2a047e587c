"""Static checks of the global data access rule (API.md §5) before building an adjoint.

Once an array element has been read it must not be written or accumulated
into again.  Two patterns are caught at compile time:

* a store to ``a[I]`` after a load of ``a[I]`` with the same index
  expression (``x[i] = x[i] * x[i]``);
* a loop (serial, while or ``ds.serial``) whose body both loads and stores
  ``a[I]`` with an index that does not change between its iterations — the
  next iteration overwrites what this one read (the loop-carried case).

Time-axis updates (``x[t + 1, i] = f(x[t, i])``) and ``+=`` accumulation
followed by reads stay legal.
"""
from __future__ import annotations

from .. import ir
from ...errors import AutodiffError

HINT = ("write the new state to another array (u_next[i] = ...) or add a time axis (u[t + 1, i]); "
        "the adjoint needs the old value")


def check_access(fn: ir.Function) -> None:
    _straight(fn, fn.body, {})
    _loops(fn, fn.body)


def _key(idx):
    return tuple(idx)


def _straight(fn, stmts, seen):
    """Program-order scan: ``seen`` maps (array, index) to the first load's statement."""
    for s in stmts:
        for e in ir.stmt_exprs(s):
            for ld in ir.loads_in(e):
                seen.setdefault((ld.arr, _key(ld.idx)), s)
        if isinstance(s, ir.Store):
            if (s.arr, _key(s.idx)) in seen:
                _fail(fn, s, "overwritten" if s.mode == "set" else "accumulated into")
        for blk in ir.child_blocks(s):
            _straight(fn, blk, seen)


def _loops(fn, stmts):
    for s in ir.walk_stmts(stmts):
        if not isinstance(s, (ir.For, ir.While, ir.TimeLoop)):
            continue
        varying = ir.assigned_vars(s.body) | ({s.var} if hasattr(s, "var") else set())
        loads = set()
        for x in ir.walk_stmts(s.body):
            for e in ir.stmt_exprs(x):
                for ld in ir.loads_in(e):
                    loads.add((ld.arr, _key(ld.idx)))
        for x in ir.walk_stmts(s.body):
            if isinstance(x, ir.Store) and (x.arr, _key(x.idx)) in loads:
                if not any(ir.vars_in(i) & varying for i in x.idx):
                    _fail(fn, x, "overwritten in a later iteration" if x.mode == "set"
                          else "accumulated into in a later iteration")


def _fail(fn, s, what):
    from ..backends.python_source import Printer
    p = Printer()
    idx = ", ".join(p.expr(i) for i in s.idx)
    raise AutodiffError(f"`{s.arr}[{idx}]` is {what} after it was read", s.loc, HINT, fn.name)
