"""Give each straight-line re-assignment of a local a new name.

Reverse mode must restore a local's old value when it goes back over an
overwrite; a new name per assignment keeps both values alive instead, so the
value stack is needed only for locals assigned inside branches and loops.
This is what keeps second and third derivatives small.

Before::                After::

    s = x * x               s = x * x
    s = s * x               s2 = s * x
    y = s + 1.0             y = s2 + 1.0
"""
from __future__ import annotations

from dataclasses import replace

from .. import ir
from .rename import rename_expr, rename_stmts


def _nested_assigned(stmts) -> set:
    out = set()
    for s in stmts:
        if isinstance(s, (ir.For, ir.TimeLoop)):
            out.add(s.var)
        if isinstance(s, ir.ParFor):
            out.update(s.vars)
        for b in ir.child_blocks(s):
            out |= ir.assigned_vars(b)
    return out


def ssa_straight(stmts: list, defined, locals_: dict, taken: set) -> tuple[list, dict]:
    """(new statements, final name of each renamed local); ``locals_``/``taken`` gain the new names."""
    pinned = _nested_assigned(stmts)
    seen = set(defined)
    vmap: dict = {}
    out = []
    for s in stmts:
        if isinstance(s, (ir.Assign, ir.Pop)):
            x = s.target
            value = rename_expr(s.value, vmap, {}) if isinstance(s, ir.Assign) else None
            if x in seen and x not in pinned:
                new, k = x, 2
                while new in taken:
                    new, k = f"{x}_{k}", k + 1
                taken.add(new)
                locals_[new] = locals_[x]
                vmap[x] = new
            elif x in vmap and x in pinned:
                vmap.pop(x)
            seen.add(x)
            tgt = vmap.get(x, x)
            out.append(replace(s, target=tgt, value=value) if isinstance(s, ir.Assign) else replace(s, target=tgt))
        else:
            out.append(rename_stmts([s], vmap, {})[0])
    return out, vmap
