"""How a parallel loop nest is printed for the CPU.

One IR loop may become up to three loops, chosen at run time:

* **serial** when the iteration space is small: starting threads costs more
  than the work (a few µs per launch, NUMBA_NOTES §4/§6);
* **privatised**: updates (``+=``) of arrays that are small next to the
  iteration count go into per-thread partial copies, merged after the loop —
  contention on a few addresses is the slow case of CPU atomics (§1);
* **parallel** with atomics where updates may collide, without them where
  the prange index separates the elements, and in phases (``i ≡ k mod W``)
  where updates reach only the neighbouring rows (stencil adjoints).
"""
from __future__ import annotations

from .. import build as B
from .. import ir
from .racefree import colouring, race_free_arrays

SMALL = 1024           # iterations below which a loop runs serially
SMALL_HEAVY = 64       # ... when its body has loops of its own
CHUNKS = 64            # pieces of a loop with scalar sums (_chunked)


def emit_parfor(p, s: ir.ParFor, d: int) -> None:
    if p.prange != "prange" or not p.small_serial or not s.serial_twin:
        _loop(p, s, d, "serial" if p.prange != "prange" else "parallel")
        return
    size = " * ".join(f"({p.expr(hi)} - ({p.expr(lo)}))" for lo, hi in s.bounds)
    heavy = any(isinstance(x, (ir.For, ir.While)) for x in ir.walk_stmts(s.body))
    p.line(d, f"if {size} < {SMALL_HEAVY if heavy else SMALL}:  # too small to be worth the threads")
    _loop(p, s, d + 1, "serial")
    priv = _privatisable(s)
    if priv:
        sizes = " + ".join(f"{a}.size" for a in sorted(priv))
        work = " * ".join([f"({size})"] + _inner_trips(p, s, priv))
        p.line(d, f"elif ({sizes}) * {_threads()} <= 4 * {work} + 65536:  "
                  "# small update targets: per-thread copies")
        _private(p, s, d + 1, sorted(priv))
    p.line(d, "else:")
    _loop(p, s, d + 1, "parallel")


def _threads() -> int:
    """A constant: numba's get_num_threads() inside a kernel would stop numba caching it."""
    import numba
    return int(numba.config.NUMBA_NUM_THREADS)


def _updates(s):
    return [x for x in ir.walk_stmts(s.body) if isinstance(x, ir.Store) and x.mode != "set"]


def _privatisable(s) -> set:
    """Arrays only ever ``+=``-updated (never read or assigned) that would otherwise need atomics."""
    free = race_free_arrays(s)
    adds = {x.arr for x in _updates(s) if x.mode == "add"} - free
    if not adds or colouring(s, adds) > 1:
        return set()
    other = {x.arr for x in ir.walk_stmts(s.body) if isinstance(x, ir.Store) and x.mode != "add"}
    loaded = set()
    for x in ir.walk_stmts(s.body):
        for e in ir.stmt_exprs(x):
            loaded |= {ld.arr for ld in ir.loads_in(e)}
    return adds - other - loaded


def _inner_trips(p, s, arrays) -> list:
    """Trip counts (source text) of the inner loops around the updates of ``arrays``, those known when the
    parallel loop starts: the updates per parallel iteration, so that a kernel whose inner loops add into
    a big array many times per iteration (a matrix product's adjoint) also gets per-thread copies."""
    assigned = ir.assigned_vars(s.body) | set(s.vars)
    counts: dict = {}
    for x in ir.walk_stmts(s.body):
        if isinstance(x, ir.Assign):
            counts[x.target] = counts.get(x.target, 0) + 1
    known = {x.target: x.value for x in s.body
             if isinstance(x, ir.Assign) and counts.get(x.target) == 1 and _invariant(x.value, assigned)}

    def bound(e):
        if isinstance(e, ir.Var) and e.name in known:
            return known[e.name]
        return e if _invariant(e, assigned) else None

    best: list = []

    def walk(stmts, trips):
        nonlocal best
        for x in stmts:
            if isinstance(x, ir.Store) and x.mode == "add" and x.arr in arrays and len(trips) > len(best):
                best = list(trips)
            if isinstance(x, ir.For):
                lo, hi = bound(x.start), bound(x.stop)
                walk(x.body, trips + ([f"max({p.expr(hi)} - ({p.expr(lo)}), 1)"] if lo is not None and hi is not None
                                      else []))
            else:
                for b in ir.child_blocks(x):
                    walk(b, trips)
    walk(s.body, [])
    return best


def _invariant(e, assigned) -> bool:
    return not (ir.vars_in(e) & assigned) and not ir.loads_in(e)


def _private(p, s, d, arrays):
    lo, hi = s.bounds[0]
    names = {a: f"_part_{a}" for a in arrays}
    p.line(d, f"_nt = {_threads()}  # numba's thread count when this was generated")
    wide = {a for a in arrays if str(p.arr_types.get(a)) == "f32"}
    for a, n in names.items():
        # float32 targets sum their per-thread partials in float64: a 10M-term f32 sum loses ~1e-3 otherwise
        p.line(d, f"{n} = np.zeros((_nt,) + {a}.shape, {'np.float64' if a in wide else a + '.dtype'})")
    p.line(d, "for _c in prange(_nt):")
    span = f"({p.expr(hi)} - ({p.expr(lo)}))"
    p.line(d + 1, f"for {s.vars[0]} in range({p.expr(lo)} + {span} * _c // _nt, "
                  f"{p.expr(lo)} + {span} * (_c + 1) // _nt):")
    saved = p.private
    p.private = dict(names)
    _body(p, s, d + 2, race_free_arrays(s) | set(arrays))
    p.private = saved
    p.line(d, "for _c in range(_nt):")
    for a, n in names.items():
        if a in wide:
            p.line(d + 1, "if _c > 0:")
            p.line(d + 2, f"{n}[0] += {n}[_c]")
        else:
            p.line(d + 1, f"{a} += {n}[_c]")
    for a, n in names.items():
        if a in wide:
            p.line(d, f"{a} += {n}[0].astype(np.float32)")


def _loop(p, s, d, mode):
    lo, hi = s.bounds[0]
    note = f"  # {s.reverse_note}" if s.reverse_note else ""
    free = race_free_arrays(s)
    updated = {x.arr for x in _updates(s)}
    i = s.vars[0]
    phases = colouring(s, updated - free) if mode == "parallel" else 0
    racy_floats = {x.arr for x in _updates(s) if x.mode == "add" and x.arr not in free and x.value.ty.is_float}
    if mode == "serial":
        p.line(d, f"for {i} in {p._range(lo, hi, False)}:{note}")
        depth, free = d + 1, free | updated
    elif getattr(p, "deterministic", False) and racy_floats and phases <= 1:
        # float atomics sum in arrival order: run this loop serially for bitwise reproducibility
        p.line(d, f"for {i} in {p._range(lo, hi, False)}:  # serial: ds.init(deterministic=True)")
        depth, free = d + 1, free | racy_floats
    elif phases > 1:
        # rows i = lo + k (mod phases) of each phase never touch the same elements
        p.line(d, f"for _phase in range({phases}):  # phases instead of atomics: updates reach rows "
                  f"within {phases - 1} of i")
        p.line(d + 1, f"for _m in prange(({p.expr(hi)} - ({p.expr(lo)}) - _phase + {phases - 1})"
                      f" // {phases}):{note}")
        p.line(d + 2, f"{i} = {p.expr(lo)} + _phase + _m * {phases}")
        depth, free = d + 2, free | updated
    elif s.reductions and isinstance(lo, ir.Const) and lo.value >= 0:
        _chunked(p, s, d, free, note)
        return
    else:
        p.line(d, f"for {i} in p{p._range(lo, hi, False)}:{note}")
        depth = d + 1
    _body(p, s, depth, free, first=1)


def _chunked(p, s, d, free, note):
    """A loop with scalar sums (``loss[None] += ...``, privatised): ``CHUNKS`` chunks of iterations shared
    among the threads (a constant: the source, and so the sum, do not depend on the thread count), each
    summing with ``radd`` (backends/reassoc.py: LLVM may split the sum into vector lanes) and
    indexing with an unsigned copy of the loop variable (numba checks a signed index for wrap-around,
    which keeps LLVM from vectorising a loop whose start it cannot see; the chunk's start is such)."""
    lo, hi = s.bounds[0]
    i = s.vars[0]
    nt = CHUNKS
    iu = p.fresh(f"_{i}_u")
    sums = {a: p.fresh(f"{a}_c") for a in s.reductions}
    span = f"({p.expr(hi)} - {lo.value})"
    p.line(d, f"for _c in prange({nt}):  # chunks of the loop, their sums vectorisable{note}")
    for a, c in sums.items():
        p.line(d + 1, f"{c} = {p.expr(B.zero(p.local_types[a]))}")
    p.line(d + 1, f"for {iu} in range(np.uint64({lo.value} + {span} * _c // {nt}), "
                  f"np.uint64({lo.value} + {span} * (_c + 1) // {nt})):")
    p.line(d + 2, f"{i} = np.int64({iu})")
    saved = p.index_alias, p.red_alias
    p.index_alias, p.red_alias = {i: iu}, sums
    _body(p, s, d + 2, free, first=1)
    p.index_alias, p.red_alias = saved
    for a, c in sums.items():
        p.line(d + 1, f"{a} += {c}")


def _body(p, s, depth, free, first=1):
    for v, (lo2, hi2) in zip(s.vars[first:], s.bounds[first:]):
        depth = p.serial_for(v, lo2, hi2, depth)
    saved = p.par_ctx
    p.par_ctx = (s.vars[0], free)
    from .python_source import _stacks
    p.declare_stacks(_stacks(s.body, True), depth)
    p.block(s.body, depth)
    p.par_ctx = saved
