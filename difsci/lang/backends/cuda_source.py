"""Print typed IR as numba.cuda source: one ``@cuda.jit`` kernel per top-level
parallel loop, and a host function that runs everything else.

The generated module (for a kernel ``k``)::

    @cuda.jit(cache=True)
    def _cu_k_k0(x, y, out, a, _cu_n, _cu_lo0):      # one thread per iteration
        _cu_t = cuda.grid(1)
        if _cu_t < _cu_n:                              # bounds check: the last block is partial
            i = _cu_lo0 + _cu_t
            out[i] = a * x[i] + y[i]

    def k(x, y, out, a):                               # host: serial statements, time loops, launches
        x = _cu_in(x)  ...                             # numpy arguments copied to the device
        _cu_lo0 = int(0)
        _cu_n = max(int(x.shape[0]) - _cu_lo0, 0)
        if _cu_n > 0:
            _cu_k_k0[_cu_blocks(_cu_n), 256](x, y, out, a, _cu_n, _cu_lo0)

* An ``ndrange`` is flattened over a 1-D grid of ``BLOCK`` (256) threads a
  block, the last index fastest (consecutive threads touch consecutive
  elements of C-ordered arrays).
* Statements outside parallel loops — and ``ds.serial`` time loops — run in
  the host function, which the ``python`` backend's printer prints (NumPy
  semantics); a time loop becomes a host loop of launches.  Scalars computed
  there are passed to the kernels as arguments.
* ``+=``/``min``/``max`` updates are ``cuda.atomic.add/min/max`` (``nanmin``/
  ``nanmax`` for floats: NumPy's fmin/fmax, like the CPU atomics) unless every
  access to the array is indexed by all the loop's indices (then each thread
  owns its elements).  Scalar reductions across a loop (the adjoint's
  ``c_bar = c_bar + c_bar_i``) become an atomic add into a one-element device
  array, added to the host value after the launch.  The CPU backend's
  ``privatize`` pass is not run: its accumulators become plain atomics here.
* Math goes through ``math.*`` (libdevice on the GPU); ``floor``/``ceil``/
  ``cbrt``/``exp2`` through libdevice directly; ``min``/``max``/``sign`` through
  small device functions (see rt_cuda).  ``randu``/``randn`` are device
  functions giving the same bits as the CPU versions.
* The adjoint's per-iteration value stacks are ``cuda.local.array`` of a fixed
  size (``DIFSCI_CUDA_STACK``, default 256 entries); a push past the end is
  not stored but recorded in a flag, and the host function raises
  ``BackendError`` after the launches, naming the kernel and the size needed,
  so an overflow is never a silently wrong gradient.
* ``ds.init(deterministic=True)``: loops whose float atomics/reductions would
  sum in arrival order run on one GPU thread (slow but reproducible).
"""
from __future__ import annotations

import os

from .. import ir
from .. import types as T
from ..primitives import PRIMS
from .python_source import NP_NAME, Printer, _stacks

NUMBA_NAME = {"f32": "float32", "f64": "float64", "i32": "int32", "i64": "int64", "bool": "boolean"}
DEFAULT_STACK = 256
HEADER = "from difsci.lang.backends.rt_cuda import *  # noqa: F401,F403"


def stack_size() -> int:
    """Entries per per-thread value stack (a compile-time constant: part of the generated source)."""
    try:
        n = int(os.environ.get("DIFSCI_CUDA_STACK", DEFAULT_STACK))
    except ValueError:
        n = DEFAULT_STACK
    return max(1, n)


def _cache_flag() -> str:
    return "" if os.environ.get("DIFSCI_CUDA_CACHE", "1") in ("0", "") else "cache=True"


# ------------------------------------------------------------------ analysis
def host_assigned(stmts) -> set:
    """Variables assigned by host code (statements outside parallel loops)."""
    out = set()
    for s in stmts:
        if isinstance(s, (ir.Assign, ir.Pop)):
            out.add(s.target)
        elif isinstance(s, (ir.For, ir.TimeLoop)):
            out.add(s.var)
        if isinstance(s, ir.ParFor):
            continue
        for b in ir.child_blocks(s):
            out |= host_assigned(b)
    return out


def _names(stmts):
    """(variables read, arrays touched) in ``stmts`` and everything nested."""
    reads, arrays = set(), set()
    for s in ir.walk_stmts(stmts):
        if isinstance(s, ir.Store):
            arrays.add(s.arr)
        for e in ir.stmt_exprs(s):
            for n in ir.walk_expr(e):
                if isinstance(n, ir.Var):
                    reads.add(n.name)
                elif isinstance(n, (ir.Load, ir.Shape)):
                    arrays.add(n.arr)
    return reads, arrays


def _var_uses(stmts, name) -> int:
    k = 0
    for s in ir.walk_stmts(stmts):
        for e in ir.stmt_exprs(s):
            k += sum(1 for n in ir.walk_expr(e) if isinstance(n, ir.Var) and n.name == name)
    return k


def reductions(stmts, candidates) -> dict:
    """Outer variables the loop only accumulates into (``v = v + e``, ``e`` free of ``v``)."""
    out = {}
    assigns: dict = {}
    other = set()
    for s in ir.walk_stmts(stmts):
        if isinstance(s, ir.Assign) and s.target in candidates:
            assigns.setdefault(s.target, []).append(s)
        elif isinstance(s, ir.Pop) and s.target in candidates:
            other.add(s.target)
        elif isinstance(s, (ir.For, ir.TimeLoop)) and s.var in candidates:
            other.add(s.var)
    for v, sts in assigns.items():
        if v in other:
            continue
        ok = True
        for s in sts:
            e = s.value
            if not (isinstance(e, ir.Op) and e.op == "add" and len(e.args) == 2):
                ok = False
                break
            a, b = e.args
            rest = b if (isinstance(a, ir.Var) and a.name == v) else a if (isinstance(b, ir.Var) and b.name == v) else None
            if rest is None or v in ir.vars_in(rest):
                ok = False
                break
        if ok and _var_uses(stmts, v) == len(sts):
            out[v] = sts[0].ty or sts[0].value.ty
    return out


def const_adds(stmts) -> dict:
    """``a[c] += v`` with constant indices into arrays the loop never reads nor otherwise writes.

    Each thread sums these into a private partial; a warp adds its 32 partials
    with shuffles and one lane makes a single atomic add (a loss summed over
    10^8 threads would otherwise be 10^8 atomics on one address).
    """
    found, bad, loaded = {}, set(), set()
    for s in ir.walk_stmts(stmts):
        for e in ir.stmt_exprs(s):
            loaded |= {ld.arr for ld in ir.loads_in(e)}
        if isinstance(s, ir.Store):
            if s.mode == "add" and all(isinstance(i, ir.Const) for i in s.idx):
                found.setdefault((s.arr, tuple(i.value for i in s.idx)), s.idx)
            else:
                bad.add(s.arr)
    return {k: v for k, v in sorted(found.items(), key=lambda kv: (kv[0][0], str(kv[0][1])))
            if k[0] not in bad and k[0] not in loaded}


def race_free(pf: ir.ParFor) -> set:
    """Arrays every access of which indexes some fixed axis with each loop index, exactly.

    One thread runs one (i, j, ...) of the flattened nest, so two threads never
    touch the same element of such an array: its updates need no atomics.
    """
    pvars = pf.vars
    if set(pvars) & ir.assigned_vars(pf.body):
        return set()
    axes: dict = {}

    def visit(arr, idx):
        hits = tuple({k for k, e in enumerate(idx) if isinstance(e, ir.Var) and e.name == v} for v in pvars)
        axes[arr] = hits if arr not in axes else tuple(a & b for a, b in zip(axes[arr], hits))

    for s in ir.walk_stmts(pf.body):
        if isinstance(s, ir.Store):
            visit(s.arr, s.idx)
        for e in ir.stmt_exprs(s):
            for ld in ir.loads_in(e):
                visit(ld.arr, ld.idx)
    return {a for a, hs in axes.items() if all(hs)}


def _numba_type(t) -> str:
    if isinstance(t, ir.ArrayInfo):
        return f"{NUMBA_NAME[t.dtype.name]}[{', '.join([':'] * t.ndim)}]"
    return NUMBA_NAME[t.name]


# ------------------------------------------------------------------- printer
class CudaPrinter(Printer):
    def __init__(self, fn: ir.Function, echo=True, deterministic=False):
        super().__init__(echo)
        self.fn = fn
        self.deterministic = deterministic
        self.prange = "range"
        self.arr_types = {n: t.dtype for n, t in fn.params if isinstance(t, ir.ArrayInfo)}
        self.arr_info = {n: t for n, t in fn.params if isinstance(t, ir.ArrayInfo)}
        self.types = dict(fn.locals)
        for s in ir.walk_stmts(fn.body):        # loop counters the frontend may not list: integers
            if isinstance(s, (ir.For, ir.TimeLoop)):
                self.types.setdefault(s.var, T.i64)
            elif isinstance(s, ir.ParFor):
                for v in s.vars:
                    self.types.setdefault(v, T.i64)
        for n, t in fn.params:
            if isinstance(t, T.Scalar):
                self.types[n] = t
        self.host_vars = host_assigned(fn.body) | {n for n, t in fn.params if isinstance(t, T.Scalar)}
        self.in_kernel = False
        self.blocks: list = []            # (lines, locmap) of each kernel
        self.sigs: dict = {}              # kernel name -> numba signature (for cuda.compile_ptx)
        self.nk = 0
        self.stack = stack_size()
        self.red: dict = {}               # in a kernel: reduced variable -> (partial, its type)
        self.part: dict = {}              # in a kernel: (array, constant index) -> partial
        self.free: set = set()            # in a kernel: arrays updated without atomics
        self.preinit: dict = {}           # host variables a kernel assigns (firstprivate)

    # ---------------------------------------------------------- expressions
    def _op(self, e):
        prim = PRIMS.get(e.op)
        if prim is None:
            return super()._op(e)
        op, a, ty = e.op, e.args, e.ty
        spell = self._spell(op, ty, prim.spell)
        argt = ty if prim.kind == "same" else None
        if prim.kind == "float":
            argt = ty if ty.is_float else None
        if op in ("randu", "randn"):
            argt = None
        s = spell.format(*[self.expr(x, argt if x.ty.name != getattr(argt, "name", None) else None) for x in a])
        if ty.name in ("f32", "i32"):
            s = f"{NP_NAME[ty.name]}({s})"
        return s, 10

    def _spell(self, op, ty, spell):
        if not self.in_kernel:
            # host code: Python with NumPy semantics, as on the python backend
            if spell.startswith(("min(", "max(", "abs(")):
                return "_cu_h" + spell
            return "_cu_hmath." + spell[5:] if spell.startswith("math.") else spell
        bits = "f32" if ty.name == "f32" else "f64"
        if op in ("floor", "ceil"):
            return f"_cu_{op}_{bits}({{0}})" if ty.is_float else "{0}"
        if op in ("cbrt", "exp2"):
            return f"_cu_{op}_{bits}({{0}})"
        if op == "sign":
            return "_cu_fsign({0})" if ty.is_float else "_cu_isign({0})"
        if op in ("min", "max"):
            return f"_cu_{op}({{0}}, {{1}})"
        if op in ("randu", "randn"):
            return f"_cu_{op}({{0}}, {{1}}, {{2}}, {{3}})"
        if not spell.startswith(("math.", "abs(")):
            # a new primitive spelled with numpy: numba.cuda compiles few numpy functions
            from ...errors import BackendError
            raise BackendError(f"the cuda backend has no device spelling for `{op}` ({spell}) yet; "
                               "add one to backends/cuda_source.py")
        return spell

    # ----------------------------------------------------------- statements
    def st_Assign(self, s, d):
        r = self.red.get(s.target) if self.in_kernel else None
        if r is None:
            return super().st_Assign(s, d)
        name, ty = r
        a, b = s.value.args
        rest = b if (isinstance(a, ir.Var) and a.name == s.target) else a
        self.line(d, f"{name} += {self.expr(rest, ty)}  # {s.target} += ... (a reduction: warp sums, then atomics)")

    def st_Store(self, s, d):
        if not self.in_kernel:
            return super().st_Store(s, d)
        dt = self.arr_types.get(s.arr)
        idx = ", ".join(self.expr(i) for i in s.idx)
        val = self.expr(s.value, dt)
        key = None
        if s.mode == "add" and all(isinstance(i, ir.Const) for i in s.idx):
            key = (s.arr, tuple(i.value for i in s.idx))
        if s.mode == "set":
            self.line(d, f"{s.arr}[{idx}] = {val}")
        elif key in self.part:
            self.line(d, f"{self.part[key]} += {val}  # {s.arr}[{idx}] += ... (warp sums, then atomics)")
        elif s.arr in self.free:
            if s.mode == "add":
                self.line(d, f"{s.arr}[{idx}] += {val}")
            else:
                self.line(d, f"{s.arr}[{idx}] = _cu_{s.mode}({s.arr}[{idx}], {val})")
        else:
            fn = s.mode
            if fn in ("min", "max") and dt is not None and dt.is_float:
                fn = "nan" + fn          # fmin/fmax semantics, as the CPU atomics
            where = idx if len(s.idx) == 1 else f"({idx})"
            self.line(d, f"cuda.atomic.{fn}({s.arr}, {where}, {val})")

    def declare_stacks(self, names, d):
        if not self.in_kernel:
            return super().declare_stacks(names, d)
        for n in names:
            dt = "np.int64" if n.startswith("i") else "np.float64"
            self.line(d, f"_stack_{n} = cuda.local.array({self.stack}, {dt})  # per-thread value stack")
            self.line(d, f"_sp_{n} = 0")

    def st_Push(self, s, d):
        if not self.in_kernel:
            return super().st_Push(s, d)
        ty = T.i64 if s.stack.startswith("i") else T.f64
        n = s.stack
        self.line(d, f"if _sp_{n} < {self.stack}:")
        self.line(d + 1, f"_stack_{n}[_sp_{n}] = {self.expr(s.value, ty)}")
        self.line(d, "else:")
        self.line(d + 1, f"cuda.atomic.max(_cu_ovf, 0, _sp_{n} + 1)  # overflow: reported by the host")
        self.line(d, f"_sp_{n} += 1")

    def st_Pop(self, s, d):
        if not self.in_kernel:
            return super().st_Pop(s, d)
        n = s.stack
        self.line(d, f"_sp_{n} -= 1")
        src = f"_stack_{n}[_sp_{n}]"
        if s.ty.name in ("f32", "i32"):
            src = f"{NP_NAME[s.ty.name]}({src})"
        elif s.ty.is_bool:
            src = f"{src} != 0"
        zero = "False" if s.ty.is_bool else ("0" if s.ty.is_int else "0.0")
        zero = zero if s.ty.name not in ("f32", "i32") else f"{NP_NAME[s.ty.name]}({zero})"
        self.line(d, f"{s.target} = {src} if _sp_{n} < {self.stack} else {zero}")

    def st_ParFor(self, s, d):
        if self.in_kernel:
            # a parallel loop inside a parallel loop runs serially in its thread
            for v, (lo, hi) in zip(s.vars, s.bounds):
                self.line(d, f"for {v} in {self._range(lo, hi, False)}:")
                d += 1
            self.block(s.body, d)
            return
        self._kernel(s, d)

    def st_MatMul(self, s, d):
        """``out += op(a) @ op(b)`` (ds.matmul): a kernel with one thread per element of ``out``."""
        A = (lambda i, k: f"{s.a}[{k}, {i}]") if s.ta else (lambda i, k: f"{s.a}[{i}, {k}]")
        B = (lambda k, j: f"{s.b}[{j}, {k}]") if s.tb else (lambda k, j: f"{s.b}[{k}, {j}]")
        inner = f"{s.a}.shape[{0 if s.ta else 1}]"
        dt = self.arr_types[s.out]
        if self.in_kernel:   # not expected (matmul is a top-level statement); serially in the thread
            self.line(d, f"for _cu_i in range({s.out}.shape[0]):")
            self.line(d + 1, f"for _cu_j in range({s.out}.shape[1]):")
            self.line(d + 2, f"for _cu_k in range({inner}):")
            self.line(d + 3, f"{s.out}[_cu_i, _cu_j] += {A('_cu_i', '_cu_k')} * {B('_cu_k', '_cu_j')}")
            return
        kname = f"_cu_{self.fn.name}_k{self.nk}"
        self.nk += 1
        arrs = list(dict.fromkeys([s.a, s.b, s.out]))
        params = arrs + ["_cu_n", "_cu_e1"]
        self.sigs[kname] = f"void({', '.join([_numba_type(self.arr_info[a]) for a in arrs] + ['int64'] * 2)})"
        flag = _cache_flag()
        blk = [f"@cuda.jit({flag})" if flag else "@cuda.jit",
               f"def {kname}({', '.join(params)}):",
               f"    # ds.matmul: {s.out} += {s.a}{'.T' if s.ta else ''} @ {s.b}{'.T' if s.tb else ''}",
               "    _cu_t = cuda.grid(1)",
               "    if _cu_t < _cu_n:",
               "        _cu_i = _cu_t // _cu_e1",
               "        _cu_j = _cu_t % _cu_e1",
               f"        _cu_s = {self._zero(dt)}",
               f"        for _cu_k in range({inner}):",
               f"            _cu_s += {A('_cu_i', '_cu_k')} * {B('_cu_k', '_cu_j')}",
               f"        {s.out}[_cu_i, _cu_j] += _cu_s"]
        self.blocks.append((blk, {}))
        self.line(d, f"_cu_e1 = int({s.out}.shape[1])")
        self.line(d, f"_cu_n = int({s.out}.shape[0]) * _cu_e1")
        self.line(d, "if _cu_n > 0:")
        self.line(d + 1, f"{kname}[_cu_blocks(_cu_n), BLOCK]({', '.join(params)})")

    # --------------------------------------------------------------- kernels
    def _kernel(self, s: ir.ParFor, d: int):
        fn = self.fn
        kname = f"_cu_{fn.name}_k{self.nk}"
        self.nk += 1
        reads, arrays = _names(s.body)     # the loop's own bounds are evaluated by the host
        assigned = ir.assigned_vars(s.body)
        pvars = set(s.vars)
        outer = ((reads | assigned) & self.host_vars) - pvars
        red = {v: t for v, t in reductions(s.body, outer & assigned).items()}
        scalars = sorted(outer - set(red))
        for v in scalars:
            if v in assigned and v not in dict(fn.params):
                self.preinit[v] = self.types[v]
        free = race_free(s)
        part = {key: idx for key, idx in const_adds(s.body).items() if key[0] not in free}
        stacks = _stacks(s.body, True)
        racy_float = any(isinstance(x, ir.Store) and x.mode != "set" and x.arr not in free
                         and self.arr_types[x.arr].is_float for x in ir.walk_stmts(s.body))
        racy_float = racy_float or any(t.is_float for t in red.values())
        serial = self.deterministic and racy_float
        nd = len(s.vars)
        geo = ["_cu_n"] + [f"_cu_lo{k}" for k in range(nd)] + [f"_cu_e{k}" for k in range(1, nd)]
        rnames = {v: f"_cu_r{k}" for k, v in enumerate(sorted(red))}
        arr_params = [n for n, t in fn.params if isinstance(t, ir.ArrayInfo) and n in arrays]
        params = arr_params + scalars + geo + [rnames[v] for v in sorted(red)] + (["_cu_ovf"] if stacks else [])
        sig = ([_numba_type(self.arr_info[a]) for a in arr_params] + [_numba_type(self.types[v]) for v in scalars]
               + ["int64"] * len(geo) + [f"{NUMBA_NAME[red[v].name]}[:]" for v in sorted(red)]
               + (["int64[:]"] if stacks else []))
        self.sigs[kname] = f"void({', '.join(sig)})"

        # ---- the kernel, printed into a block of its own
        saved = (self.lines, self.locmap, self.last_loc)
        self.lines, self.locmap, self.last_loc = [], {}, None
        pnames = {key: f"_cu_p{k}" for k, key in enumerate(part)}
        rparts = {v: f"_cu_p{len(part) + k}" for k, v in enumerate(sorted(red))}
        self.in_kernel, self.free = True, free
        self.red = {v: (rparts[v], t) for v, t in red.items()}
        self.part = pnames
        flag = _cache_flag()
        self.line(0, f"@cuda.jit({flag})" if flag else "@cuda.jit")
        self.line(0, f"def {kname}({', '.join(params)}):")
        if s.reverse_note:
            self.line(1, f"# {s.reverse_note}")
        sums = [(pnames[key], self.arr_types[key[0]], key[0], self.part_index(part[key])) for key in part]
        sums += [(rparts[v], red[v], rnames[v], "0") for v in sorted(red)]
        for pn, ty, _, _ in sums:
            self.line(1, f"{pn} = {self._zero(ty)}")
        if serial:
            self.line(1, "# ds.init(deterministic=True): one thread runs every iteration in order")
            self.line(1, "for _cu_t in range(cuda.grid(1), _cu_n, cuda.gridsize(1)):")
        else:
            self.line(1, "_cu_t = cuda.grid(1)")
            self.line(1, "if _cu_t < _cu_n:")
        depth = 2
        q = "_cu_t"
        for k in range(nd - 1, 0, -1):
            self.line(depth, f"{s.vars[k]} = {self._pv(s.vars[k], f'_cu_lo{k} + {q} % _cu_e{k}')}")
            if k > 1:
                self.line(depth, f"_cu_q{k} = {q} // _cu_e{k}")
                q = f"_cu_q{k}"
            else:
                q = f"{q} // _cu_e1"
        self.line(depth, f"{s.vars[0]} = {self._pv(s.vars[0], f'_cu_lo0 + {q}')}")
        self.declare_stacks(stacks, depth)
        self.block(s.body, depth)
        if sums and not serial:
            for pn, _, _, _ in sums:
                self.line(1, f"{pn} = _cu_warp_sum({pn})")
            self.line(1, "if _cu_lane0():")
            for pn, _, arr, where in sums:
                self.line(2, f"cuda.atomic.add({arr}, {where}, {pn})")
        elif sums:
            for pn, _, arr, where in sums:
                self.line(1, f"cuda.atomic.add({arr}, {where}, {pn})")
        self.blocks.append((self.lines, self.locmap))
        self.lines, self.locmap, self.last_loc = saved
        self.in_kernel, self.red, self.free, self.part = False, {}, set(), {}

        # ---- the launch, in the host function
        for k, (lo, hi) in enumerate(s.bounds):
            self.line(d, f"_cu_lo{k} = int({self.expr(lo)})")
            self.line(d, f"_cu_e{k} = max(int({self.expr(hi)}) - _cu_lo{k}, 0)")
        self.line(d, "_cu_n = " + " * ".join(f"_cu_e{k}" for k in range(nd)))
        self.line(d, "if _cu_n > 0:")
        for v in sorted(red):
            self.line(d + 1, f"{rnames[v]} = _cu_red(0, np.{red[v].np.__name__})")
        grid = "1, 1" if serial else "_cu_blocks(_cu_n), BLOCK"
        self.line(d + 1, f"{kname}[{grid}]({', '.join(params)})")
        for v in sorted(red):
            self.line(d + 1, f"{v} = {v} + _cu_get({rnames[v]})")
        self.uses_stacks = self.uses_stacks or bool(stacks)

    def part_index(self, idx):
        src = ", ".join(self.expr(i) for i in idx)
        return src if len(idx) == 1 else f"({src})"

    @staticmethod
    def _zero(ty):
        return {"f64": "0.0", "i64": "0"}.get(ty.name) or f"{NP_NAME[ty.name]}(0)"

    def _pv(self, v, src):
        t = self.types.get(v)
        return f"{NP_NAME[t.name]}({src})" if t is not None and t.name != "i64" else src


def print_cuda(fn: ir.Function, header_lines=(), locmap: dict | None = None, echo: bool = True,
               deterministic: bool = False) -> str:
    """The kernel as numba.cuda source: the kernels, then the host function ``fn.name``."""
    if not fn.is_kernel or fn.results:
        raise TypeError("the cuda printer prints kernels; funcs are inlined into them")
    p = CudaPrinter(fn, echo, deterministic)
    p.uses_stacks = False
    host: list = []
    p.lines = host
    arrays = [n for n, t in fn.params if isinstance(t, ir.ArrayInfo)]
    written = sorted({s.arr for s in ir.walk_stmts(fn.body) if isinstance(s, ir.Store)}
                     | {s.out for s in ir.walk_stmts(fn.body) if type(s).__name__ == "MatMul"})
    p.declare_stacks(_stacks(fn.body, False), 1)
    body_start = len(host)
    p.block(fn.body, 1) if fn.body else p.line(1, "pass")
    body = host[body_start:]
    body_map = {k - body_start: v for k, v in p.locmap.items()}
    del host[body_start:]
    # prologue: arguments to the device, outer variables the kernels assign defined first
    pro = [f"    {a} = _cu_in({a})" for a in arrays]
    if any(a in written for a in arrays):
        pro = [f"    _cu_h_{a} = {a}" for a in arrays if a in written] + pro
    for v, t in sorted(p.preinit.items()):
        zero = {"bool": "False", "i64": "0", "f64": "0.0"}.get(t.name) or f"{NP_NAME[t.name]}(0)"
        pro.append(f"    {v} = {zero}")
    if p.uses_stacks:
        pro.append("    _cu_ovf = _cu_flag()  # set by a kernel whose per-thread value stack overflowed")
    epi = []
    if p.uses_stacks:
        epi.append(f"    _cu_stack_check(_cu_ovf, {fn.name!r}, {p.stack})")
    epi += [f"    _cu_back(_cu_h_{a}, {a})" for a in arrays if a in written]

    out = list(header_lines)
    lm: dict = {}
    for lines, kmap in p.blocks:
        off = len(out)
        out += lines + ["", ""]
        lm.update({k + off: v for k, v in kmap.items()})
    out.append(f"def {fn.name}({', '.join(n for n, _ in fn.params)}):")
    out += host + pro
    off = len(out)
    out += body
    lm.update({k + off: v for k, v in body_map.items()})
    out += epi
    out.append("")
    out.append(f"_CU_SIGNATURES = {p.sigs!r}  # kernel -> numba signature, for cuda.compile_ptx checks")
    if locmap is not None:
        locmap.update(lm)
    return "\n".join(out) + "\n"
