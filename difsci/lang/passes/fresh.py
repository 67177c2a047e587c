"""Adjoints whose gradient arrays are zero at entry, whatever they hold: the zeroing done by the adjoint.

``x.zero_grad()`` on a big gradient that nothing else can see only marks it zero (array.py); the next
adjoint launch that receives it runs a variant of the adjoint with ``fn.fresh`` naming those gradient
arrays.  This pass makes that variant correct for any kernel -- an array it cannot place is zeroed
whole at the start, as ``zero_grad`` would have done -- and cheap where the kernel's first touch of
the array can do the zeroing as it goes, in cache, instead of a separate pass over memory:

1. **A parallel loop touching each element at its own index** (``x_bar[i, j] += ...``, the adjoint
   of a loss over a field; ``p_bar[i, c]`` for vector components) as the kernel's first statement
   touching the array: each iteration zeroes its element first; the elements outside the loop's
   range are zeroed before it.
2. **A time history in a ``ds.serial`` adjoint** (the wave equation's ``h_bar[t]``): step ``t`` is
   the first to touch slice ``t + cf`` (``cf``: the time offset the reversed steps reach first).
   Where a gathered loop (passes/gather.py), which stores one sum at every element of its box,
   touches the slice first, that store *sets* instead of adding; where a parallel loop touches it
   first only at its own elements (mass-spring's ``x_bar[t, i]``), each iteration zeroes its
   element first.  The elements of the slice outside the loop's range are zeroed just before it,
   and the slices no step touches first are zeroed before anything runs.

Wave 128^2 x 256: nothing writes the 32 MiB of zeros the separate ``zero_grad`` wrote, nor reads
them back (1.8 ms of a 9.9 ms forward+backward, two threads).

Preconditions checked for 2 (anything else: case 1, or zeroed whole at the start):

* every access of the array inside the time loop indexes axis 0 with ``t + c``, ``c`` constant;
  no ``break``/``continue`` inside the loop (every step runs its first-touch loop);
* the first statement of a step that touches slice ``t + cf`` is a parallel loop; inside it that
  slice is touched only by the gathered sum's store, or only at the loop's own element (the loop's
  variables on axes 1.., constants after them); the loop's ranges start at a constant >= 0;
* statements before the time loop touch the array only at slices provably outside those the
  steps touch first (the loss's ``h_bar[T - 1]``), and the loop's bounds are known from the
  parameters before the kernel runs.
"""
from __future__ import annotations

from dataclasses import replace

from .. import build as B
from .. import ir
from .. import types as T
from ..backends.racefree import split_const
from .gather import _plus, gather
from .simplify import simplify


def bar_params(fn: ir.Function) -> list:
    """The gradient parameters of the adjoint ``fn``, in ``fn.active_params`` order (reverse.reverse_kernel
    puts them after the kernel's own parameters, before any scratch arrays)."""
    n = len(fn.active_params)
    end = len(fn.params) - len(getattr(fn, "scratch", ()))
    return [p for p, _ in fn.params[end - n:end]]


def takes_fresh(fn: ir.Function) -> frozenset:
    """The gradient parameters of the adjoint ``fn`` that a variant zeroes at their first touch (kept on
    ``fn``): only for those does a lazily zeroed gradient save anything."""
    ok = getattr(fn, "_takes_fresh", None)
    if ok is None:
        arrays = fn.arrays()
        cands = frozenset(b for b in bar_params(fn) if arrays[b].ndim >= 1 and arrays[b].dtype.is_float)
        try:
            ok = gather(simplify(replace(fn, fresh=cands))).fresh_done if cands else frozenset()
        except Exception as e:  # noqa: BLE001 -- an optimisation must not break a backward: zeros at launch
            ok = frozenset()
            fn._takes_fresh_error = repr(e)
        fn._takes_fresh = ok
    return ok


def first_touch(fn: ir.Function, loops: dict, taken: set) -> ir.Function:
    """``fn`` (after gathering; ``loops`` from passes/gather.py) zeroing ``fn.fresh`` itself.  The result
    carries ``fresh_done``: the arrays zeroed at their first touch (the others are zeroed whole)."""
    locals_ = dict(fn.locals)
    arrays = fn.arrays()
    body = list(fn.body)
    defs = _defs(fn)
    plans: dict = {}              # position of the first-touch loop or time loop -> [(array, plan)]
    prologue, done = [], set()
    for x in sorted(fn.fresh):
        plan = _plan(fn, x, body, loops, defs)
        if plan is None:
            prologue += _zero_all(x, arrays[x], taken, locals_)
        else:
            plans.setdefault(plan.get("at", plan.get("own")), []).append((x, plan))
            done.add(x)
    for k, xs in plans.items():
        if "own" in xs[0][1]:            # a parallel loop: each iteration zeroes its own element first
            pf = body[k]
            for x, plan in xs:
                comp = _complement(x, arrays[x], [], plan["box"], taken, locals_)
                prologue += [ir.Comment(f"{x} is zero at entry: each iteration of the loop that touches it first "
                                        f"zeroes its own element" + (", the rest zeroed now" if comp else ""))]
                prologue += comp
                pf = replace(pf, body=_zero_rest(x, arrays[x], list(plan["vars"]), taken, locals_) + pf.body)
            body[k] = pf
            continue
        tl = body[k]
        stmts = list(tl.body)
        pre: dict = {}               # position in the step -> statements to run just before it
        for x, plan in xs:
            p = plan["first"]
            slice0 = _plus(ir.Var(_tv_type(tl, locals_), tl.var), plan["cf"])
            comp = _complement(x, arrays[x], [slice0], plan["box"], taken, locals_)
            where = f"slice {tl.var} {_off(plan['cf'])}"
            if "target" in plan:
                stmts[p] = _sets(stmts[p], x, plan["target"])
                text = f"the loop below sets {where} (it touches it first)"
            else:
                zero = _zero_rest(x, arrays[x], [slice0] + list(plan["vars"]), taken, locals_)
                stmts[p] = replace(stmts[p], body=zero + stmts[p].body)
                text = f"each iteration of the loop below zeroes its own element of {where} first"
            pre.setdefault(p, []).append(ir.Comment(f"{x} is zero at entry: {text}"
                                                    + (", the rest of the slice zeroed here" if comp else "")))
            pre[p] += comp
            prologue += [ir.Comment(f"{x} is zero at entry: the slices no step of the `{tl.var}` loop touches "
                                    f"first are zeroed now")]
            prologue += _zero_outside(x, arrays[x], *plan["range"], taken, locals_)
        body[k] = replace(tl, body=[t for q, s in enumerate(stmts) for t in pre.get(q, []) + [s]])
    out = replace(fn, body=prologue + body, locals=locals_,
                  header=fn.header + f"; {', '.join(sorted(fn.fresh))} zero at entry")
    out.fresh_done = frozenset(done)
    return out


def _off(c: int) -> str:
    return f"+ {c}" if c > 0 else f"- {-c}" if c < 0 else "+ 0"


# ------------------------------------------------------------------ analysis
def _accesses(stmts, x):
    """(index, statement) of every access of ``x`` (index None: one this pass cannot see into)."""
    for s in ir.walk_stmts(stmts):
        if isinstance(s, ir.MatMul) and x in (s.a, s.b, s.out):
            yield None, s
        for e in ir.stmt_exprs(s):
            for ld in ir.loads_in(e):
                if ld.arr == x:
                    yield ld.idx, s
        if isinstance(s, ir.Store) and s.arr == x:
            yield s.idx, s


def _defs(fn):
    """Locals assigned once in the whole function, at its top level, from loads-free values."""
    counts: dict = {}
    for s in ir.walk_stmts(fn.body):
        for v in _targets(s):
            counts[v] = counts.get(v, 0) + 1
    return {s.target: s.value for s in fn.body
            if isinstance(s, ir.Assign) and counts.get(s.target) == 1 and not ir.loads_in(s.value)}


def _targets(s) -> tuple:
    """The names statement ``s`` itself assigns (not those of its nested blocks)."""
    if isinstance(s, (ir.Assign, ir.Pop)):
        return (s.target,)
    if isinstance(s, (ir.For, ir.TimeLoop)):
        return (s.var,)
    if isinstance(s, ir.ParFor):
        return tuple(s.vars)
    return ()


def _resolve(e, defs, seen=frozenset()):
    """``e`` with the locals of ``defs`` replaced by their values (a name met again inside its own
    value is left as it is: ``_known_before`` then refuses it)."""
    def sub(v):
        if isinstance(v, ir.Var) and v.name in defs and v.name not in seen:
            return _resolve(defs[v.name], defs, seen | {v.name})
        return v
    return ir.map_expr(e, sub)


def _known_before(e, fn) -> bool:
    """Whether ``e`` (resolved) is computable at the kernel's start: parameters never reassigned, shapes."""
    if e is None or ir.loads_in(e):
        return False
    assigned = ir.assigned_vars(fn.body)
    params = {n for n, _ in fn.params}
    return all(v in params and v not in assigned for v in ir.vars_in(e))


def _time_offset(idx, tv):
    """``c`` when ``idx[0]`` is ``tv + c``, else None."""
    if idx is None or not idx:
        return None
    base, c = split_const(idx[0])
    return c if isinstance(base, ir.Var) and base.name == tv else None


def _plan(fn, x, body, loops, defs):
    first = next((k for k, s in enumerate(body) if any(_accesses([s], x))), None)
    if first is not None and isinstance(body[first], ir.ParFor):
        own = _plan_own(fn, x, body[first], first)
        if own is not None:
            return own
    k = next((k for k, s in enumerate(body) if isinstance(s, ir.TimeLoop) and any(_accesses([s], x))), None)
    if k is None:
        return None
    tl = body[k]
    if any(isinstance(s, (ir.Break, ir.Continue)) for s in ir.walk_stmts(tl.body)):
        return None
    offs = set()
    for idx, _ in _accesses(tl.body, x):
        c = _time_offset(idx, tl.var)
        if c is None:
            return None
        offs.add(c)
    cf = min(offs) if tl.reverse else max(offs)
    # the first statement of a step touching slice t + cf
    p = next(p for p, s in enumerate(tl.body) if any(_time_offset(i, tl.var) == cf for i, _ in _accesses([s], x)))
    pf = tl.body[p]
    if not isinstance(pf, ir.ParFor):
        return None
    got = loops.get(id(tl), {}).get(id(pf))
    plan = _first_gathered(fn, x, tl, pf, cf, got) if got is not None else _first_own(fn, x, tl, pf, cf)
    if plan is None:
        return None
    # the slices the steps touch first: [start + cf, max(stop, start) + cf)
    start, stop = _resolve(tl.start, defs), _resolve(tl.stop, defs)
    if not (_known_before(start, fn) and _known_before(stop, fn)):
        return None
    for idx, _ in _accesses(body[:k], x):
        e = _resolve(idx[0], defs) if idx else None
        if e is None or not (_at_least(e, stop, cf) or _below(e, start, cf)):
            return None
    lo_s = _plus(start, cf)
    hi_s = _plus(B.call("max", stop, start), cf)
    return dict(plan, at=k, first=p, cf=cf, range=(lo_s, hi_s))


def _first_gathered(fn, x, tl, pf, cf, got):
    """Slice ``t + cf`` first touched by a gathered loop: its one sum store there becomes a set."""
    targets = [idx for arr, idx in got["sums"] if arr == x and _time_offset(idx, tl.var) == cf]
    if len(targets) != 1:
        return None
    target = targets[0]
    for idx, s in _accesses([pf], x):
        if _time_offset(idx, tl.var) == cf and not (isinstance(s, ir.Store) and s.mode == "add" and s.idx == target):
            return None
    box = got["box"]
    names = [e.name if isinstance(e, ir.Var) else None for e in target[1:]]
    if None in names or set(names) != set(box) or len(names) != len(box) or len(target) != fn.arrays()[x].ndim:
        return None
    for v in names:
        first = box[v][0]
        if not (isinstance(first, ir.Const) and first.value >= 0):
            return None
    return {"target": target, "box": [box[v] for v in names]}


def _first_own(fn, x, tl, pf, cf):
    """Slice ``t + cf`` first touched by a parallel loop only at its own element (``x[t + cf, i, c]``): each
    iteration zeroes that element first (mass-spring's ``x_bar[t, i]`` in the adjoint of the update)."""
    own = None
    for idx, _ in _accesses([pf], x):
        if _time_offset(idx, tl.var) != cf:
            continue
        lead = idx[1:1 + len(pf.vars)]
        if len(lead) < len(pf.vars) or not all(isinstance(e, ir.Var) and e.name == v for e, v in zip(lead, pf.vars)):
            return None
        if not all(isinstance(e, ir.Const) for e in idx[1 + len(pf.vars):]) or len(idx) != fn.arrays()[x].ndim:
            return None
        own = lead
    if own is None or not all(isinstance(lo, ir.Const) and lo.value >= 0 for lo, _ in pf.bounds):
        return None
    return {"vars": own, "box": list(pf.bounds)}


def _plan_own(fn, x, pf, k):
    """The first statement touching ``x`` is a parallel loop touching it only at its own element
    (``x[i, j]``, ``x[i, j, c]`` with constant trailing indices): each iteration zeroes its element first."""
    own = None
    for idx, _ in _accesses([pf], x):
        if idx is None or len(idx) < len(pf.vars):
            return None
        lead = idx[:len(pf.vars)]
        if not all(isinstance(e, ir.Var) and e.name == v for e, v in zip(lead, pf.vars)):
            return None
        if not all(isinstance(e, ir.Const) for e in idx[len(pf.vars):]):
            return None
        own = lead
    if own is None or len(idx) != fn.arrays()[x].ndim:
        return None
    for lo, _ in pf.bounds:
        if not (isinstance(lo, ir.Const) and lo.value >= 0):
            return None
    return {"own": k, "vars": own, "box": list(pf.bounds)}


def _at_least(e, stop, cf) -> bool:
    """``e >= stop + cf`` for every value of the common base."""
    (b1, c1), (b2, c2) = split_const(e), split_const(stop)
    return b1 == b2 and c1 >= c2 + cf


def _below(e, start, cf) -> bool:
    (b1, c1), (b2, c2) = split_const(e), split_const(start)
    return b1 == b2 and c1 < c2 + cf


# ------------------------------------------------------------------ rewrite
def _sets(s, x, target):
    """``s`` with the stores ``x[target] += v`` turned into ``x[target] = v``."""
    if isinstance(s, ir.Store):
        return replace(s, mode="set") if s.arr == x and s.mode == "add" and s.idx == target else s
    if isinstance(s, ir.If):
        return replace(s, body=[_sets(t, x, target) for t in s.body], orelse=[_sets(t, x, target) for t in s.orelse])
    if isinstance(s, (ir.For, ir.ParFor, ir.TimeLoop, ir.While)):
        return replace(s, body=[_sets(t, x, target) for t in s.body])
    return s


def _tv_type(tl, locals_):
    return locals_.get(tl.var) or tl.start.ty


def _var(taken, locals_):
    k = 0
    while f"_z{k}" in taken:
        k += 1
    taken.add(f"_z{k}")
    locals_[f"_z{k}"] = T.i64
    return ir.Var(T.i64, f"_z{k}")


def _zero_rest(x, info, idx, taken, locals_):
    """Statements storing 0 at every element of ``x`` whose leading indices are ``idx``: loops over the
    array's axes, the vector/matrix component axes (their sizes known) written out."""
    k = len(idx)
    comps = tuple(getattr(info.elem, "shape", ()))
    if k >= info.ndim - len(comps):
        rest = [()]
        for n in comps[k - (info.ndim - len(comps)):]:
            rest = [r + (c,) for r in rest for c in range(n)]
        return [ir.Store(x, tuple(idx) + tuple(ir.Const(T.i64, c) for c in r), B.zero(info.dtype), "set") for r in rest]
    v = _var(taken, locals_)
    return [ir.For(v.name, ir.Const(T.i64, 0), ir.Shape(T.WEAK_INT, x, k), _zero_rest(x, info, idx + [v], taken, locals_))]


def _complement(x, info, prefix, box, taken, locals_):
    """Zero the elements of ``x[prefix]`` outside ``box`` ([(first, end)] per axis from len(prefix) on; the
    axes after the box: whole)."""
    def comp(k, idx):
        if k == len(prefix) + len(box):
            return []
        first, end = box[k - len(prefix)]
        n = ir.Shape(T.WEAK_INT, x, k)
        f = B.call("min", first, n)
        e = B.call("min", B.call("max", end, first), n)
        v = _var(taken, locals_)
        out = [ir.For(v.name, ir.Const(T.i64, 0), f, _zero_rest(x, info, idx + [v], taken, locals_)),
               ir.For(v.name, e, n, _zero_rest(x, info, idx + [v], taken, locals_))]
        inner = comp(k + 1, idx + [v])
        if inner:
            out.append(ir.For(v.name, f, e, inner))
        return out
    return comp(len(prefix), list(prefix))


def _zero_outside(x, info, lo, hi, taken, locals_):
    """Zero the slices ``x[s]`` with ``s`` outside ``[lo, hi)``: a few slices, serially (a parallel loop over
    every slice would make a launch with only small loops take the parallel build, backends/small.py)."""
    n = ir.Shape(T.WEAK_INT, x, 0)
    a = B.call("min", B.call("max", lo, ir.Const(T.i64, 0)), n)
    b = B.call("min", B.call("max", hi, a), n)
    out = []
    for start, stop in ((ir.Const(T.i64, 0), a), (b, n)):
        v = _var(taken, locals_)
        out.append(ir.For(v.name, start, stop, _zero_rest(x, info, [v], taken, locals_)))
    return out


def _zero_all(x, info, taken, locals_):
    v = _var(taken, locals_)
    return [ir.Comment(f"{x} is zero at entry"),
            ir.ParFor((v.name,), ((ir.Const(T.i64, 0), ir.Shape(T.WEAK_INT, x, 0)),),
                      _zero_rest(x, info, [v], taken, locals_))]
