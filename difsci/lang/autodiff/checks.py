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

A third check is about parallel loops: an element one iteration overwrites
(``y[i, j] = ...``) while another iteration updates it (``y[i, j - 1] += ...``)
is a race, whose result depends on the order the iterations run in, and so
would its gradient.  Caught where both indices are ``loop var + constant`` (or
the same loop-invariant expression) on every axis; scatters through index
arrays (``y[perm[i]] = ...``) cannot be told apart from permutations and stay
legal.
"""
from __future__ import annotations

from .. import ir
from ...errors import AutodiffError

HINT = ("write the new state to another array (u_next[i] = ...) or add a time axis (u[t + 1, i]); "
        "the adjoint needs the old value")


def check_access(fn: ir.Function) -> None:
    global _canon
    _canon = _copies(fn)
    try:
        _straight(fn, fn.body, {})
        _loops(fn, fn.body)
        _races(fn)
    finally:
        _canon = None


_canon = None


def _key(idx):
    return tuple(_canon(i) if _canon is not None else i for i in idx)


def _copies(fn):
    """Index expressions with single-assignment locals replaced by their definitions.

    An inlined func reads ``a[peek_i]`` after ``peek_i = i``: both name the
    same element as ``a[i]``.  A local is replaced when it is assigned once
    and its definition uses only names that never change (parameters,
    parallel-loop indices) or other such locals.
    """
    counts, defs = {}, {}
    for s in ir.walk_stmts(fn.body):
        if isinstance(s, (ir.Assign, ir.Pop)):
            counts[s.target] = counts.get(s.target, 0) + 1
            if isinstance(s, ir.Assign):
                defs[s.target] = s.value
        elif isinstance(s, (ir.For, ir.TimeLoop)):
            counts[s.var] = counts.get(s.var, 0) + 2
    memo = {}

    def stable(v, depth=0):
        if v in memo:
            return memo[v]
        if counts.get(v, 0) == 0:
            return True
        if counts[v] > 1 or v not in defs or depth > 50 or ir.loads_in(defs[v]):
            return False
        memo[v] = False           # guards against cycles
        ok = all(stable(u, depth + 1) for u in ir.vars_in(defs[v]))
        memo[v] = ok
        return ok

    def canon(e):
        def sub(n):
            if isinstance(n, ir.Var) and counts.get(n.name, 0) == 1 and n.name in defs and stable(n.name):
                return canon(defs[n.name])
            return n
        return ir.map_expr(e, sub)
    return canon


def _straight(fn, stmts, seen):
    """Program-order scan: ``seen`` maps (array, index) to the first load's statement."""
    for s in stmts:
        for e in ir.stmt_exprs(s):
            for ld in ir.loads_in(e):
                seen.setdefault((ld.arr, _key(ld.idx)), s)
        if isinstance(s, ir.Store):
            if (s.arr, _key(s.idx)) in seen or (s.arr, "*") in seen:
                _fail(fn, s, "overwritten" if s.mode == "set" else "accumulated into")
        if isinstance(s, ir.MatMul):           # ds.matmul: reads all of a and b, accumulates into all of out
            if any(arr == s.out for arr, _ in seen):
                raise AutodiffError(f"`{s.out}` is accumulated into (ds.matmul) after it was read", s.loc, HINT,
                                    fn.name)
            seen.setdefault((s.a, "*"), s)
            seen.setdefault((s.b, "*"), s)
        for blk in ir.child_blocks(s):
            _straight(fn, blk, seen)


def _loops(fn, stmts):
    for s in ir.walk_stmts(stmts):
        if not isinstance(s, (ir.For, ir.While, ir.TimeLoop)):
            continue
        varying = _varying(s)
        loads = set()
        for x in ir.walk_stmts(s.body):
            for e in ir.stmt_exprs(x):
                for ld in ir.loads_in(e):
                    loads.add((ld.arr, _key(ld.idx)))
        for x in ir.walk_stmts(s.body):
            if isinstance(x, ir.Store) and (x.arr, _key(x.idx)) in loads:
                if not any(ir.vars_in(i) & varying for i in _key(x.idx)):
                    _fail(fn, x, "overwritten in a later iteration" if x.mode == "set"
                          else "accumulated into in a later iteration")


def _races(fn):
    from ..backends.racefree import split_const
    for pf in ir.walk_stmts(fn.body):
        if not isinstance(pf, ir.ParFor):
            continue
        loopvars = set(pf.vars)
        varying = ir.assigned_vars(pf.body) | loopvars

        def axes(idx):
            """Per axis (loop var, constant) or ("=", expression) when invariant; None otherwise."""
            out = []
            for e in idx:
                base, c = split_const(e)
                if isinstance(base, ir.Var) and base.name in loopvars:
                    out.append((base.name, c))
                elif not (ir.vars_in(e) & varying) and not ir.loads_in(e):
                    out.append(("=", e))
                else:
                    return None
            return out

        stores = [(x, axes(_key(x.idx))) for x in ir.walk_stmts(pf.body) if isinstance(x, ir.Store)]
        for st, a in stores:
            if st.mode != "set" or a is None:
                continue
            for x, b in stores:
                if x is st or x.arr != st.arr or b is None or len(a) != len(b):
                    continue
                # the same loop var on every axis (or the same invariant), some axis at another offset:
                # the element one iteration writes is the one another iteration updates
                if all(p[0] == q[0] and (p[0] != "=" or p[1] == q[1]) for p, q in zip(a, b)) and a != b:
                    from ..backends.python_source import Printer
                    pr = Printer()
                    ia = ", ".join(pr.expr(i) for i in st.idx)
                    ib = ", ".join(pr.expr(i) for i in x.idx)
                    verb = "overwritten" if x.mode == "set" else "updated"
                    raise AutodiffError(
                        f"`{st.arr}[{ia}]` is overwritten by one iteration of a parallel loop while another "
                        f"iteration's `{st.arr}[{ib}]` is {verb}: the result depends on the order the "
                        "iterations run in, and so would the gradient", st.loc,
                        "accumulate with `+=` in both places, or write the two to different arrays", fn.name)


def _varying(loop) -> set:
    """Variables whose value differs from one iteration of ``loop`` to the next.

    The loop's own variable, and whatever is computed from it, from array
    data, or from its own previous value.  The index variables of loops
    nested inside (parallel or serial) sweep the same range in every
    iteration, so they do not count unless their bounds vary.
    """
    out = {loop.var} if hasattr(loop, "var") else set()
    changed = True
    while changed:
        changed = False
        for x in ir.walk_stmts(loop.body):
            new = set()
            if isinstance(x, ir.Assign):
                deps = ir.vars_in(x.value)
                if deps & out or x.target in deps or ir.loads_in(x.value):
                    new.add(x.target)
            elif isinstance(x, ir.Pop):
                new.add(x.target)
            elif isinstance(x, (ir.For, ir.TimeLoop, ir.ParFor)):
                if any(ir.vars_in(e) & out or ir.loads_in(e) for e in ir.stmt_exprs(x)):
                    new |= {x.var} if hasattr(x, "var") else set(x.vars)
            if new - out:
                out |= new
                changed = True
    return out


def _fail(fn, s, what):
    from ..backends.python_source import Printer
    p = Printer()
    idx = ", ".join(p.expr(i) for i in s.idx)
    raise AutodiffError(f"`{s.arr}[{idx}]` is {what} after it was read", s.loc, HINT, fn.name)
