"""Gather form of scatter loops: stencil adjoints without atomics or phases.

The adjoint of a stencil reads one element and *scatters* into its
neighbours, ``h_bar[t, i + 1, j] += lap_bar``: different iterations update the
same element, so the parallel loop needs atomics or phases.  When the updates
land at constant offsets from the loop indices, the loop can instead run over
the *updated* elements: iteration ``(i, j)`` recomputes, for each offset
``(di, dj)``, what iteration ``(i - di, j - dj)`` of the original loop would
add (if that iteration exists) and adds the sum once.  Every element is then
written by one iteration only, and the loop is race-free.

Before::                                    After::

    for i, j in ndrange((1, n-1), (1, m-1)):    for i, j in ndrange((0, n), (0, m)):
        _b0 = h_bar[t + 1, i, j]                    _gs0 = 0.0
        h_bar[t + 1, i, j] = 0.0                    if 1 <= i < n-1 and 1 <= j < m-1:
        lap_bar = _b0 * k                               _gs0 += ... (offset (0, 0))
        h_bar[t, i + 1, j] += lap_bar               if 2 <= i < n and 1 <= j < m-1:
        h_bar[t, i - 1, j] += lap_bar                   _b0 = h_bar[t + 1, i - 1, j]
        ...                                             _gs0 += _b0 * k
                                                    ...
                                                    h_bar[t, i, j] += _gs0
                                                for i, j in ndrange((1, n-1), (1, m-1)):
                                                    h_bar[t + 1, i, j] = 0.0

Applied only where it is provably equivalent: a body of locals, ``+=``
updates, the adjoint's "read the seed, then zero it" pairs and ``if``/``else``
(each offset's copy keeps the ``if``s, evaluated at the iteration that adds);
every update index is ``loop var + constant`` or loop-invariant on each axis;
no element the loop updates or zeroes is read at another index; no update can
land below index 0, by the loop's start or the conditions around it (the
checks in :func:`_plan`).  Anything else keeps the scatter form.  Applied only
where it pays: some update would otherwise need atomics or phases, and the
recomputation stays small (``MAX_GROUPS`` offsets, ``MAX_OPS`` operations).

In a ``ds.serial`` loop, the zeroing loop a gathered loop leaves behind runs
inside the next step's gathered loop instead (:func:`_time_loop`).
"""
from __future__ import annotations

from dataclasses import replace

from .. import build as B
from .. import ir
from .. import types as T
from ..backends.racefree import disjoint, race_free_arrays, split_const

ENABLED = True
MAX_GROUPS = 27        # a 3-D 27-point stencil
MAX_OPS = 400          # operations summed over the recomputed copies
# 2-D bodies with branches: the edge columns of the middle rows share the edge rows' checked copy
# (_two_copies).  Straight-line bodies keep four copies: two copies compile 25% faster (wave adjoint
# 3.1 -> 2.4 s) but ran 6-10% slower on two threads in the wave benchmark (measured A/B, same machine)
TWO_COPIES = True


def gather(fn: ir.Function) -> ir.Function:
    taken = set(fn.locals) | {n for n, _ in fn.params}
    locals_ = dict(fn.locals)
    loops: dict = {}             # id(time loop) -> {id(gathered loop in its body): what it writes, where}
    body = _gather_block(fn.body, taken, locals_, fn.arrays(), loops)[0] if ENABLED else fn.body
    out = replace(fn, body=body, locals=locals_)
    if fn.fresh:                 # gradient arrays zero at entry (passes/fresh.py)
        from .fresh import first_touch
        out = first_touch(out, loops, taken)
    return out


def _gather_block(stmts, taken, locals_, arrays, loops):
    """(the statements with their parallel loops gathered where the plan allows, [(position of a gathered
    loop, the zeroing loop right after it)], {position of a gathered loop: its ``info``})."""
    out, pairs, gathered = [], [], {}
    for s in stmts:
        if isinstance(s, ir.ParFor) and (plan := _plan(s)):
            new, info = _rewrite(s, plan, taken, locals_, arrays)
            gathered[len(out)] = info
            if len(new) == 2:
                pairs.append((len(out), new[1]))
            out += new
        elif isinstance(s, ir.TimeLoop):
            out += _time_loop(s, taken, locals_, arrays, loops)
        else:
            out.append(s)
    return out, pairs, gathered


# ------------------------------------------------------------------ analysis
def _axis_offsets(idx, loopvars, varying):
    """{loop var: offset} when each axis of ``idx`` is ``var + c`` or loop-invariant, else None."""
    offs = {}
    for e in idx:
        base, c = split_const(e)
        if isinstance(base, ir.Var) and base.name in loopvars:
            if base.name in offs:
                return None
            offs[base.name] = c
        elif ir.vars_in(e) & varying or ir.loads_in(e):
            return None
    return offs


def _layout(idx, loopvars):
    """Which loop var indexes each axis (None: an invariant axis)."""
    out = []
    for e in idx:
        base, _ = split_const(e)
        out.append(base.name if isinstance(base, ir.Var) and base.name in loopvars else None)
    return tuple(out)


def _flat(stmts):
    """Every statement of a block whose only nesting is ``if``, depth first."""
    for s in stmts:
        yield s
        if isinstance(s, ir.If):
            yield from _flat(s.body)
            yield from _flat(s.orelse)


def _plan(pf: ir.ParFor):
    """(update offsets per statement, zeroing stores) when the gather form is legal and pays, else None."""
    if not all(isinstance(s, (ir.Assign, ir.Store, ir.Comment, ir.If)) for s in _flat(pf.body)):
        return None
    loopvars = set(pf.vars)
    assigns = [s.target for s in _flat(pf.body) if isinstance(s, ir.Assign)]
    assigned = set(assigns)
    if assigned & loopvars:
        return None
    varying = assigned | loopvars
    updates: dict = {}           # id(store) -> {loop var: offset}
    stores: dict = {}            # id(store) -> the store
    paths: dict = {}             # id(store) -> the (condition, taken) pairs around it
    zero_ids: set = set()        # the zeroing stores
    zero_keys: set = set()       # their (array, index)
    single = {n for n in assigned if assigns.count(n) == 1}
    defs: dict = {}              # local assigned once, at the top level, before its use -> its value

    reads = {(ld.arr, ld.idx) for x in _flat(pf.body) for e in ir.stmt_exprs(x) for ld in ir.loads_in(e)}
    branch: dict = {}            # condition variable -> locals assigned on its (true, false) branches so far

    def scan(stmts, defined, zeroed, path, top):
        """Walk a block in program order; ``defined``: locals assigned on every path so far; ``zeroed``:
        seeds zeroed on some path so far.  Returns the pair after the block, or None (not legal)."""
        for s in stmts:
            for e in ir.stmt_exprs(s):
                if (ir.vars_in(e) & assigned) - defined:
                    return None          # a local read before this iteration assigns it on every path
                for ld in ir.loads_in(e):
                    if (ld.arr, ld.idx) in zeroed:
                        return None      # read after the zeroing: the gather form would read the old value
            if isinstance(s, ir.Assign):
                defined = defined | {s.target}
                if top and s.target in single:
                    defs[s.target] = s.value
            elif isinstance(s, ir.Store):
                offs = _axis_offsets(s.idx, loopvars, varying)
                if s.mode == "set":
                    if (not (isinstance(s.value, ir.Const) and s.value.value == 0) or (s.arr, s.idx) not in reads
                            or offs is None or set(offs) != loopvars or any(offs.values())):
                        return None
                    zero_ids.add(id(s))
                    zero_keys.add((s.arr, s.idx))
                    stores[id(s)] = s
                    zeroed = zeroed | {(s.arr, s.idx)}
                elif s.mode == "add":
                    if offs is None:
                        return None
                    updates[id(s)] = offs
                    stores[id(s)] = s
                    paths[id(s)] = path
                else:
                    return None
            elif isinstance(s, ir.If):
                # an earlier `if` on the same condition variable (assigned once) took the same branch
                key = s.cond.name if isinstance(s.cond, ir.Var) and s.cond.name in single else None
                then_in, else_in = branch.get(key, (frozenset(), frozenset()))
                a = scan(s.body, defined | then_in, zeroed, path + ((s.cond, True),), False)
                b = scan(s.orelse, defined | else_in, zeroed, path + ((s.cond, False),), False)
                if a is None or b is None:
                    return None
                if key is not None:
                    branch[key] = (then_in | a[0], else_in | b[0])
                defined, zeroed = a[0] & b[0], a[1] | b[1]
        return defined, zeroed

    if scan(pf.body, frozenset(), frozenset(), (), True) is None or not updates:
        return None
    # a zeroing store inside an `if` must be one the separate zeroing loop can repeat: conditions on loop
    # variables and invariants only
    for s in _flat(pf.body):
        if isinstance(s, ir.If) and any(id(x) in zero_ids for x in _flat(s.body + s.orelse)):
            if ir.vars_in(_resolve(s.cond, defs)) & assigned or ir.loads_in(_resolve(s.cond, defs)):
                return None
    targets = {stores[k].arr for k in updates}
    if targets <= race_free_arrays(pf):
        return None              # already race-free: nothing to gain
    # every array that is updated keeps one layout of loop vars over its axes
    layouts: dict = {}
    for k in updates:
        layouts.setdefault(stores[k].arr, set()).add(_layout(stores[k].idx, loopvars))
    if any(len(v) > 1 for v in layouts.values()):
        return None
    # nothing reads or zeroes an element that some iteration updates
    written = [(stores[k].arr, stores[k].idx) for k in updates]
    accesses = [(ld.arr, ld.idx) for s in _flat(pf.body) for e in ir.stmt_exprs(s) for ld in ir.loads_in(e)]
    accesses += list(zero_keys)
    for arr, idx in accesses:
        if any(a == arr and not disjoint(idx, widx, varying) for a, widx in written):
            return None
        # a zeroed array is read only at the elements this iteration zeroes, or provably elsewhere
        if any(a == arr and zidx != idx and not disjoint(idx, zidx, varying) for a, zidx in zero_keys):
            return None
    groups = {tuple(offs.get(v, 0) for v in pf.vars) for offs in updates.values()}
    if len(groups) > MAX_GROUPS or not any(any(g) for g in groups):
        return None              # too many copies, or no update off the loop's own element
    # no update may land below index 0: numpy's wrap-around would put two iterations on one element.  The
    # loop's start, or the conditions around the update (``if i > 0 and ...``), must keep it at 0 or above.
    bounds = dict(zip(pf.vars, pf.bounds))
    for k, offs in updates.items():
        for v, c in offs.items():
            if c >= 0:
                continue
            lo = bounds[v][0]
            if not isinstance(lo, ir.Const):
                return None
            if _lower_bound(v, lo.value, paths[k], defs) + c < 0:
                return None
    plan = {"updates": updates, "stores": stores, "zeroed": zero_ids, "groups": sorted(groups, key=_group_order)}
    if sum(_ops(c) for c in _copies(pf, plan, {})) > MAX_OPS:
        return None
    return plan


def _resolve(e, defs):
    """``e`` with the locals assigned once (at the top level, before it) replaced by their values."""
    def sub(x):
        return _resolve(defs[x.name], defs) if isinstance(x, ir.Var) and x.name in defs else x
    return ir.map_expr(e, sub)


_NEGATE = {"lt": "ge", "ge": "lt", "le": "gt", "gt": "le", "eq": "ne", "ne": "eq"}
_FLIP = {"lt": "gt", "gt": "lt", "le": "ge", "ge": "le", "eq": "eq", "ne": "ne"}


def _facts(cond, taken: bool):
    """Comparisons ``(var, op, int)`` that hold where ``cond`` is ``taken`` (True/False); others are ignored."""
    if isinstance(cond, ir.Op):
        if cond.op == "not":
            return _facts(cond.args[0], not taken)
        if (cond.op == "and" and taken) or (cond.op == "or" and not taken):
            return _facts(cond.args[0], taken) + _facts(cond.args[1], taken)
        if cond.op in _NEGATE and len(cond.args) == 2:
            a, b = cond.args
            op = cond.op
            if isinstance(a, ir.Const) and isinstance(b, ir.Var):
                a, b, op = b, a, _FLIP[op]
            if isinstance(a, ir.Var) and isinstance(b, ir.Const) and b.ty.is_int:
                return [(a.name, op if taken else _NEGATE[op], b.value)]
    return []


def _lower_bound(v: str, lo: int, path, defs) -> int:
    """The least value loop var ``v`` (from ``lo`` on) takes where every condition of ``path`` holds."""
    facts = [f for cond, taken in path for f in _facts(_resolve(cond, defs), taken) if f[0] == v]
    low = lo
    for _, op, c in facts:
        if op in ("ge", "eq"):
            low = max(low, c)
        elif op == "gt":
            low = max(low, c + 1)
    changed = True
    while changed:               # ``i != 0`` where i >= 0: i >= 1
        changed = False
        for _, op, c in facts:
            if op == "ne" and c == low:
                low, changed = low + 1, True
    return low


def _group_order(g):
    return (any(g), g)


def _ops(stmts) -> int:
    n = 0
    for s in _flat(stmts):
        for e in ir.stmt_exprs(s):
            n += sum(1 for x in ir.walk_expr(e) if isinstance(x, (ir.Op, ir.Load)))
    return n


# ------------------------------------------------------------------ rewrite
def _shift(e, d: dict):
    """``e`` evaluated at the iteration ``v - d[v]`` of each loop var ``v``."""
    base, c = split_const(e)
    if isinstance(base, ir.Var) and base.name in d:
        return _plus(base, c - d[base.name])
    if isinstance(e, ir.Op):
        return replace(e, args=tuple(_shift(a, d) for a in e.args))
    if isinstance(e, ir.Load):
        return replace(e, idx=tuple(_shift(a, d) for a in e.idx))
    return e


def _plus(e, c: int):
    """``e + c`` with the constants of ``e`` folded in (``n - 1 + 1`` is ``n``)."""
    base, c0 = split_const(e)
    c += c0
    if base is None:
        return ir.Const(e.ty, c)
    if c == 0:
        return base
    return ir.Op(base.ty, "add" if c > 0 else "sub", (base, ir.Const(base.ty, abs(c))))


def _start(lo, c: int):
    """``lo + c``, but not below 0 for a constant ``lo``: the plan proved no update lands below 0 (the
    conditions around it keep it off), and an element at -1 would alias the last one."""
    if isinstance(lo, ir.Const):
        return ir.Const(lo.ty, max(0, lo.value + c))
    return _plus(lo, c)


def _copies(pf, plan, accs):
    """One copy of the body per offset group, keeping that group's updates (into the running sums
    ``accs[target]`` when given) and what they need, ``if``s included (their conditions evaluated, like
    everything else, at the original iteration that adds)."""
    out = []
    for g in plan["groups"]:
        d = dict(zip(pf.vars, g))

        def block(stmts):
            copy = []
            for s in stmts:
                if isinstance(s, ir.Comment):
                    if g == plan["groups"][0]:       # the user's lines, echoed once per element
                        copy.append(s)
                elif isinstance(s, ir.Assign):
                    copy.append(replace(s, value=_shift(s.value, d)))
                elif isinstance(s, ir.If):
                    copy.append(replace(s, cond=_shift(s.cond, d), body=block(s.body), orelse=block(s.orelse)))
                elif id(s) in plan["updates"] and tuple(plan["updates"][id(s)].get(v, 0) for v in pf.vars) == g:
                    idx = tuple(_shift(e, d) for e in s.idx)
                    value = _shift(s.value, d)
                    key = (s.arr, idx)
                    if key in accs:
                        name, ty = accs[key]
                        copy.append(ir.Assign(name, B.add(ir.Var(ty, name), B.cast(value, ty)), ty, loc=s.loc))
                    else:
                        copy.append(replace(s, idx=idx, value=value))
            return copy
        roots = {n for n, _ in accs.values()}
        out.append(_live(block(pf.body), roots))
    return out


def _zeroing(stmts, zero_ids):
    """The zeroing stores of a body, inside the ``if``s around them."""
    out = []
    for s in stmts:
        if isinstance(s, ir.Assign):
            out.append(s)
        elif isinstance(s, ir.If):
            out.append(replace(s, body=_zeroing(s.body, zero_ids), orelse=_zeroing(s.orelse, zero_ids)))
        elif isinstance(s, ir.Store) and id(s) in zero_ids:
            out.append(s)
    return _live(out, set())


def _live(stmts, roots):
    """Drop assignments nothing later reads (the updates are the roots), ``if``s left empty, and comments
    left with nothing under them."""
    return _live_block(stmts, roots, set())[0]


def _live_block(stmts, roots, live):
    """(the kept statements, the names read before the block) given ``live``, those read after it."""
    keep = []
    used = False                 # a statement follows, before the next comment
    for s in reversed(stmts):
        if isinstance(s, ir.Comment):
            if used:
                keep.append(s)
            used = False
            continue
        if isinstance(s, ir.Assign):
            if s.target not in live and s.target not in roots:
                continue
            live = live - {s.target}
            live |= ir.vars_in(s.value)
            if s.target in roots:
                live.add(s.target)
        elif isinstance(s, ir.If):
            body, l1 = _live_block(s.body, roots, set(live))
            orelse, l2 = _live_block(s.orelse, roots, set(live))
            if not any(not isinstance(x, ir.Comment) for x in body + orelse):
                continue
            s = replace(s, body=body, orelse=orelse)
            live = l1 | l2 | ir.vars_in(s.cond)
        else:
            for e in ir.stmt_exprs(s):
                live |= ir.vars_in(e)
        keep.append(s)
        used = True
    return keep[::-1], live


def _fresh(base, taken):
    k = 0
    while f"{base}{k}" in taken:
        k += 1
    name = f"{base}{k}"
    taken.add(name)
    return name


def _rewrite(pf: ir.ParFor, plan, taken, locals_, arrays):
    groups = plan["groups"]
    spans = {v: (min(g[a] for g in groups), max(g[a] for g in groups)) for a, v in enumerate(pf.vars)}
    moving = [v for v in pf.vars if spans[v] != (0, 0)]
    # one running sum per updated element
    accs = {}
    for g in groups:
        d = dict(zip(pf.vars, g))
        for k in plan["updates"]:
            s = plan["stores"][k]
            if tuple(plan["updates"][k].get(v, 0) for v in pf.vars) == g:
                key = (s.arr, tuple(_shift(e, d) for e in s.idx))
                if key not in accs:
                    accs[key] = (_fresh("_gs", taken), arrays[s.arr].dtype)
                    locals_[accs[key][0]] = accs[key][1]
    for v, (lo, _) in zip(pf.vars[1:], pf.bounds[1:]):
        locals_.setdefault(v, _var_type(pf, v, lo))
    var = {v: ir.Var(_var_type(pf, v, lo), v) for v, (lo, _) in zip(pf.vars, pf.bounds)}
    bounds = dict(zip(pf.vars, pf.bounds))

    row_ok: dict = {}            # offset along the outer var -> a boolean set once per row (``full``)

    def variant(inside):
        """The body at one element.  Along the loop vars not ``inside``, some of the original iterations
        that update it may not exist: each offset's copy checks that its iteration does, and the sums
        are stored only where the element lies inside its array (where no iteration updates it but it
        exists, the sum adds 0)."""
        out = [ir.Assign(n, B.zero(ty), ty, loc=pf.loc) for n, ty in accs.values()]
        for g, copy in zip(groups, _copies(pf, plan, accs)):
            where = ", ".join(f"{v} - {o}" if o > 0 else f"{v} + {-o}" if o < 0 else v for v, o in zip(pf.vars, g))
            out.append(ir.Comment(f"what iteration ({where}) adds", loc=pf.loc))
            cond = None
            for v, off in zip(pf.vars, g):
                if v in moving and v not in inside:
                    lo, hi = bounds[v]
                    if v == pf.vars[0] and off in row_ok:
                        c = ir.Var(T.boolean, row_ok[off])
                    else:
                        c = B.logical("and", B.compare("ge", var[v], _plus(lo, off)),
                                      B.compare("lt", var[v], _plus(hi, off)))
                    cond = c if cond is None else B.logical("and", cond, c)
            out += copy if cond is None else [ir.If(cond, copy, [], loc=pf.loc)]
        for (arr, idx), (name, ty) in accs.items():
            store = ir.Store(arr, idx, ir.Var(ty, name), "add", loc=pf.loc)
            cond = None
            for ax, e in enumerate(idx):
                if isinstance(e, ir.Var) and e.name in moving and e.name not in inside:
                    c = B.compare("lt", e, ir.Shape(T.WEAK_INT, arr, ax))
                    cond = c if cond is None else B.logical("and", cond, c)
            out.append(store if cond is None else ir.If(cond, [store], [], loc=pf.loc))
        return out

    def full(k):
        """Loops over the axes from ``k`` on, each over its whole gathered range, the body checking every
        offset's iteration (the edge rows)."""
        if k == len(pf.vars):
            return variant(frozenset())
        v, (lo, hi), (cmin, cmax) = pf.vars[k], pf.bounds[k], spans[pf.vars[k]]
        return [ir.For(v, _start(lo, cmin), _plus(hi, cmax), full(k + 1), loc=pf.loc)]

    def nest(k, inside):
        """Loops over the axes from ``k`` on inside a row where all the original iterations along the axes
        in ``inside`` exist: each moving axis splits into its two edges (checked along it) and a middle
        with no checks, whose constant start lets LLVM vectorise it."""
        if k == len(pf.vars):
            return variant(inside)
        v, (lo, hi), (cmin, cmax) = pf.vars[k], pf.bounds[k], spans[pf.vars[k]]
        first, end = _start(lo, cmin), _plus(hi, cmax)
        if v not in moving:
            return [ir.For(v, first, end, nest(k + 1, inside), loc=pf.loc)]
        b, c = _start(lo, cmax), _plus(hi, cmin)         # [b, c): no checks needed along v
        b_end = B.call("min", b, end)
        return [ir.For(v, first, b_end, nest(k + 1, inside), loc=pf.loc),
                ir.For(v, b, c, nest(k + 1, inside | {v}), loc=pf.loc),
                ir.For(v, B.call("max", c, b_end), end, nest(k + 1, inside), loc=pf.loc)]

    v0, (lo0, hi0), (cmin0, cmax0) = pf.vars[0], pf.bounds[0], spans[pf.vars[0]]
    head = ir.Comment("gather form: each element sums what the original iterations add to it", loc=pf.loc)
    if v0 not in moving:
        body = [head] + nest(1, frozenset())
    else:
        inner = B.logical("and", B.compare("ge", var[v0], _plus(lo0, cmax0)),
                          B.compare("lt", var[v0], _plus(hi0, cmin0)))
        # in an edge row, whether each offset's original row exists is known once per row
        pre = []
        for off in sorted({g[0] for g in groups}):
            row_ok[off] = _fresh("_row", taken)
            locals_[row_ok[off]] = T.boolean
            pre.append(ir.Assign(row_ok[off], B.logical("and", B.compare("ge", var[v0], _plus(lo0, off)),
                                                        B.compare("lt", var[v0], _plus(hi0, off))), T.boolean,
                                 loc=pf.loc))
        branchy = any(isinstance(x, ir.If) for x in _flat(pf.body))
        if TWO_COPIES and branchy and len(pf.vars) == 2 and pf.vars[1] in moving:
            body = [head] + pre + _two_copies(pf, inner, spans, var, variant, taken, locals_)
        else:
            body = [head, ir.If(inner, nest(1, frozenset({v0})), pre + full(1), loc=pf.loc)]
    note = "gather form" + (f"; {pf.reverse_note}" if pf.reverse_note else "")
    out = [ir.ParFor((v0,), ((_start(lo0, cmin0), _plus(hi0, cmax0)),), body, note, loc=pf.loc, serial_twin=False)]
    if plan["zeroed"]:
        zeros = _zeroing(pf.body, plan["zeroed"])
        out.append(replace(pf, body=[ir.Comment("the seeds read above, zeroed once every iteration has read them",
                                                loc=pf.loc)] + zeros, reverse_note=""))
    # what passes/fresh.py needs to know: every element of the box (each loop var over its gathered range) is
    # visited once, and each sum is stored once at that element (where it lies inside the array)
    box = {v: (_start(lo, spans[v][0]), _plus(hi, spans[v][1])) for v, (lo, hi) in zip(pf.vars, pf.bounds)}
    return out, {"box": box, "sums": [key for key in accs]}


def _two_copies(pf, mid_row, spans, var, variant, taken, locals_):
    """A 2-D gathered row as two copies of the body (each copy costs numba ~0.5-1 s to compile with
    ``parallel=True``; the edges of the middle rows and the edge rows share one):

    * one loop over the elements that need checks -- in a middle row its two edge runs of columns,
      in an edge row every column -- with every offset's iteration checked;
    * in a middle row, one loop over the middle columns with no checks (vectorised).
    """
    v1 = pf.vars[1]
    (lo1, hi1), (cmin1, cmax1) = pf.bounds[1], spans[v1]
    ty = var[v1].ty
    first, end = _start(lo1, cmin1), _plus(hi1, cmax1)
    b, c = _start(lo1, cmax1), _plus(hi1, cmin1)          # [b, c): no checks needed along v1
    b_end = B.call("min", b, end)
    r0 = B.call("max", c, b_end)                          # the right edge run starts here
    names = {k: _fresh(k, taken) for k in ("_mid", "_nl", "_r", "_e")}
    for k, t in (("_mid", T.boolean), ("_nl", ty), ("_r", ty), ("_e", ty)):
        locals_[names[k]] = t
    mid, nl, e = (ir.Var(T.boolean, names["_mid"]), ir.Var(ty, names["_nl"]), ir.Var(ty, names["_e"]))
    r_start, r0 = r0, ir.Var(ty, names["_r"])
    n_mid = B.add(nl, B.call("max", B.sub(end, r0), B.const(0)))
    n_all = B.sub(end, first)
    j = B.select(B.logical("and", mid, B.compare("ge", e, nl)), B.add(r0, B.sub(e, nl)), B.add(first, e))
    checked = ir.For(names["_e"], ir.Const(ty, 0), B.select(mid, n_mid, n_all),
                     [ir.Assign(v1, j, ty, loc=pf.loc)] + variant(frozenset()), loc=pf.loc)
    return [ir.Assign(names["_mid"], mid_row, T.boolean, loc=pf.loc),
            ir.Comment(f"checked: in a middle row ({names['_mid']}) the {names['_nl']} columns on the left and "
                       f"those from {names['_r']} on; in an edge row every column", loc=pf.loc),
            ir.Assign(names["_nl"], B.sub(b_end, first), ty, loc=pf.loc),
            ir.Assign(names["_r"], r_start, ty, loc=pf.loc),
            checked,
            ir.If(mid, [ir.For(v1, b, c, variant(frozenset(pf.vars)), loc=pf.loc)], [], loc=pf.loc)]


def _var_type(pf, v, lo):
    for s in _flat(pf.body):
        for e in ir.stmt_exprs(s):
            for x in ir.walk_expr(e):
                if isinstance(x, ir.Var) and x.name == v:
                    return x.ty
    return lo.ty if lo.ty.is_int else T.i64


# ------------------------------------------------ seeds zeroed one step later
def _time_loop(tl: ir.TimeLoop, taken, locals_, arrays, loops):
    """A ``ds.serial`` loop whose parallel loops are gathered.

    A gathered loop that zeroes its seeds leaves a second parallel loop behind it
    (the zeroing must wait until every iteration has read them).  Where the
    next step provably touches none of those elements, the zeroing moves into
    the next step's gathered loop, a row at a time, and the last step's after
    the time loop: one parallel loop per step instead of two.  (2-D wave
    adjoint, 128^2 x 256 steps, two threads: 3.3 -> 2.7 ms, measured.)
    """
    body, pairs, gathered = _gather_block(tl.body, taken, locals_, arrays, loops)
    out = _defer(tl, body, pairs, gathered, taken, locals_)
    loop = next(s for s in out if isinstance(s, ir.TimeLoop))
    loops[id(loop)] = dict(gathered)
    return out


def _defer(tl, body, pairs, gathered, taken, locals_):
    """The time loop with each deferrable zeroing loop run by the next step's gathered loop (_time_loop);
    ``gathered`` ({position: info}) becomes, in place, {id(gathered loop in the new body): info}."""
    gathered_at = dict(gathered)
    gathered.clear()
    chosen = [(g, z) for g, z in pairs if _deferrable(tl, body, g, z)]
    owners: dict = {}            # array -> the zeroing loops that zero it
    for g, z in chosen:
        for s in z.body:
            if isinstance(s, ir.Store):
                owners.setdefault(s.arr, set()).add(g)
    chosen = [(g, z) for g, z in chosen
              if all(owners[s.arr] == {g} for s in z.body if isinstance(s, ir.Store))]  # one loop per array
    if not chosen:
        gathered.update({id(body[k]): info for k, info in gathered_at.items()})
        return [replace(tl, body=body)]
    loc = None                   # bookkeeping: no user line of its own (the loop's line is echoed above it)
    tv_ty = locals_.get(tl.var) or tl.start.ty
    before, after, tail = [], [], []
    drop = set()
    for g, z in chosen:
        pend, tz = _fresh("_pend", taken), _fresh("_tz", taken)
        locals_[pend], locals_[tz] = T.boolean, tv_ty
        before += [ir.Comment(f"seeds zeroed a step late, by the next step's gathered loop ({pend}: a step ran, "
                              f"{tz}: which)", loc=loc),
                   ir.Assign(pend, ir.Const(T.boolean, False), T.boolean, loc=loc),
                   ir.Assign(tz, tl.start, tv_ty, loc=loc)]
        tail += [ir.Assign(tz, ir.Var(tv_ty, tl.var), tv_ty, loc=loc),
                 ir.Assign(pend, ir.Const(T.boolean, True), T.boolean, loc=loc)]
        late = _at_time(z, tl.var, ir.Var(tv_ty, tz))
        gpf = body[g]
        (lo, hi), (glo, ghi) = z.bounds[0], gpf.bounds[0]
        cond = ir.Var(T.boolean, pend)
        if (lo, hi) != (glo, ghi):
            v0 = ir.Var(_var_type(z, z.vars[0], lo), z.vars[0])
            cond = B.logical("and", cond, B.logical("and", B.compare("ge", v0, lo), B.compare("lt", v0, hi)))
        # in the step after, the same elements are those at ``t - step`` (indexed from ``t``, so that the
        # race-free analysis sees them apart from the elements this step reads and updates)
        prev = _at_time(z, tl.var, _plus(ir.Var(tv_ty, tl.var), -_step(tl)))
        rows = [s for s in prev.body if not isinstance(s, ir.Comment)]
        for v, (vlo, vhi) in reversed(list(zip(z.vars[1:], z.bounds[1:]))):
            rows = [ir.For(v, vlo, vhi, rows, loc=z.loc)]
        note = ir.Comment("the seeds the previous step read, zeroed now that every iteration has read them",
                          loc=z.loc)
        body[g] = replace(gpf, body=gpf.body + [ir.If(cond, [note] + rows, [], loc=z.loc)])
        drop.add(g + 1)
        after.append(ir.If(ir.Var(T.boolean, pend), [late], [], loc=z.loc))
    gathered.update({id(body[k]): info for k, info in gathered_at.items()})
    body = [s for k, s in enumerate(body) if k not in drop] + tail
    return before + [replace(tl, body=body)] + after


def _step(tl: ir.TimeLoop) -> int:
    return -1 if tl.reverse else 1


def _at_time(z: ir.ParFor, tv: str, value: ir.Expr) -> ir.ParFor:
    """The zeroing loop with the time variable replaced by ``value``."""
    def sub(e):
        base, c = split_const(e)
        if isinstance(base, ir.Var) and base.name == tv:
            return _plus(value, c)
        return e
    body = [replace(s, idx=tuple(sub(e) for e in s.idx)) if isinstance(s, ir.Store) else s
            for s in z.body]
    return replace(z, body=body)


def _deferrable(tl: ir.TimeLoop, body: list, g: int, z: ir.ParFor) -> bool:
    """Whether the zeroing loop ``z`` (at ``g + 1``, after the gathered loop at ``g``) may run during the
    next step's gathered loop instead: the elements it zeroes, ``A[t + c0, ...]``, are touched by nothing
    in between -- the statements after it in the same step (at ``t + c0``) and those up to and including
    the gathered loop in the next step (at ``t + c0 - step``)."""
    gpf = body[g]
    if not isinstance(gpf, ir.ParFor) or gpf.vars[0] != z.vars[0]:
        return False
    if any(isinstance(s, (ir.Break, ir.Continue, ir.MatMul)) for s in ir.walk_stmts(body)):
        return False
    varying = ir.assigned_vars(tl.body) | ir.assigned_vars(body) | {tl.var}

    def invariant(e):
        return not (ir.vars_in(e) & varying) and not ir.loads_in(e)

    if not all(invariant(e) for b in z.bounds for e in b):
        return False
    # the gathered loop's rows cover the zeroing loop's: same base, constants around it
    (lo, hi), (glo, ghi) = z.bounds[0], gpf.bounds[0]
    (b1, c1), (b2, c2) = split_const(lo), split_const(glo)
    (b3, c3), (b4, c4) = split_const(hi), split_const(ghi)
    if b1 != b2 or b3 != b4 or c2 > c1 or c4 < c3:
        return False
    step = _step(tl)
    own = set(z.vars)
    slices: dict = {}            # array -> (axis, c0)
    for s in z.body:
        if isinstance(s, ir.Comment):
            continue
        if not (isinstance(s, ir.Store) and s.mode == "set" and isinstance(s.value, ir.Const)):
            return False
        axis = None
        for a, e in enumerate(s.idx):
            base, c = split_const(e)
            if isinstance(base, ir.Var) and base.name == tl.var:
                if axis is not None:
                    return False
                axis = (a, c)
            elif ir.loads_in(e) or (ir.vars_in(e) & varying) - own:
                return False
        if axis is None or slices.setdefault(s.arr, axis) != axis:
            return False
    for k, s in enumerate(body):
        if k == g + 1:
            continue
        for x in ir.walk_stmts([s]):
            acc = [(ld.arr, ld.idx) for e in ir.stmt_exprs(x) for ld in ir.loads_in(e)]
            if isinstance(x, ir.Store):
                acc.append((x.arr, x.idx))
            for arr, idx in acc:
                if arr not in slices:
                    continue
                a, c0 = slices[arr]
                if len(idx) <= a:
                    return False
                base, c = split_const(idx[a])
                if not (isinstance(base, ir.Var) and base.name == tl.var):
                    return False
                if c == (c0 if k > g + 1 else c0 - step):
                    return False
    return True
