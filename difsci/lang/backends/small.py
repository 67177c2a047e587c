"""Small launches run a serial build of the kernel.

Every parallel loop of a ``cpu`` kernel checks its trip count and runs
serially below ``parfor.SMALL`` iterations (``SMALL_HEAVY`` when its body has
loops of its own).  When a launch's arguments show, before it starts, that
*every* parallel loop of the kernel will take that serial path, the launch
runs the same source printed with plain ``range`` loops and compiled without
``parallel=True`` instead: the same loops in the same order, so the same
numbers bit for bit (tests/test_small_launch.py).  What it saves is compile
time: numba compiles the serial build 2-4x faster (a stencil adjoint with
boundary branches: 0.8 s against 2.8 s with ``parallel=True``), and programs
that only ever launch small kernels (most tests, small simulations) never
compile the parallel build.  (It does not save launch time: a parallel build
whose loops take their serial twins costs 0.19 µs a call, like the serial one.)

``predicate(fn)`` builds, from the kernel's IR as the printer sees it, a plain
Python function of the launch arguments that says whether all parallel loops
are small.  It exists only when every loop's bounds follow from array shapes,
integer arguments and constants through the kernel's first straight-line
assignments; otherwise (bounds read from arrays, set inside loops, ...) every
launch takes the parallel build.
"""
from __future__ import annotations

from .. import ir
from .. import types as T
from .parfor import SMALL, SMALL_HEAVY

_ARITH = {"add": "+", "sub": "-", "mul": "*", "floordiv": "//"}


def predicate(fn: ir.Function):
    """A function ``(*runtime_args) -> bool``, or None (the launch always takes the parallel build)."""
    params = [n for n, _ in fn.params]
    ints = {n for n, t in fn.params if isinstance(t, T.Scalar) and t.is_int}
    arrays = set(fn.arrays())
    counts: dict = {}
    for s in ir.walk_stmts(fn.body):
        if isinstance(s, ir.Assign):
            counts[s.target] = counts.get(s.target, 0) + 1
    # integer arguments the kernel never reassigns (a wrong guess would only cost speed: the serial
    # build computes the same thing at any size, as ``ds.init(debug=True)`` does)
    known = {n for n in ints if n not in counts}
    lines = []

    def text(e):
        """Python source for an integer expression of known names, or None."""
        if isinstance(e, ir.Const) and e.ty.is_int:
            return repr(int(e.value))
        if isinstance(e, ir.Var) and e.name in known:
            return e.name
        if isinstance(e, ir.Shape) and e.arr in arrays:
            return f"{e.arr}.shape[{e.dim}]"
        if isinstance(e, ir.Op) and e.ty.is_int:
            args = [text(a) for a in e.args]
            if any(a is None for a in args):
                return None
            if e.op in _ARITH and len(args) == 2:
                return f"({args[0]} {_ARITH[e.op]} {args[1]})"
            if e.op == "neg" and len(args) == 1:
                return f"(-{args[0]})"
            if e.op in ("min", "max") and args:
                return f"{e.op}({', '.join(args)})"
        return None

    # the kernel's leading straight-line assignments (``n, m = h.shape[1], h.shape[2]``)
    for s in fn.body:
        if isinstance(s, ir.Comment):
            continue
        if not isinstance(s, ir.Assign):
            break
        t = text(s.value)
        if t is None or counts.get(s.target) != 1 or s.target in params:
            continue
        lines.append(f"    {s.target} = {t}")
        known.add(s.target)
    checks = []
    for s in ir.walk_stmts(fn.body):
        if not isinstance(s, ir.ParFor):
            continue
        spans = []
        for lo, hi in s.bounds:
            a, b = text(lo), text(hi)
            if a is None or b is None:
                return None
            spans.append(f"({b} - {a})")
        heavy = any(isinstance(x, (ir.For, ir.While)) for x in ir.walk_stmts(s.body))
        checks.append(f"{' * '.join(spans)} < {SMALL_HEAVY if heavy else SMALL}")
    if not checks:
        return None
    src = "\n".join([f"def _small({', '.join(params)}):"] + lines + ["    return " + " and ".join(checks)]) + "\n"
    ns: dict = {}
    exec(compile(src, f"<difsci small-launch check of {fn.name}>", "exec"), ns)  # plain Python, not numba
    pred = ns["_small"]
    pred.source = src
    return pred
