"""Print typed IR as Python source (the same text for every backend; only
the header differs).  Every value is cast to its IR type where numba or
Python would otherwise pick another one, so all backends compute alike.
"""
from __future__ import annotations

import math

from .. import ir
from .. import types as T
from ..primitives import PRIMS

INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%", "pow": "**",
         "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
PREC = {"or": 1, "and": 2, "not": 3, "lt": 4, "le": 4, "gt": 4, "ge": 4, "eq": 4, "ne": 4,
        "add": 6, "sub": 6, "mul": 7, "div": 7, "floordiv": 7, "mod": 7, "neg": 8, "pow": 9}
NP_NAME = {"f32": "np.float32", "f64": "np.float64", "i32": "np.int32", "i64": "np.int64", "bool": "np.bool_"}
# results numba may type differently from the IR: cast when narrow
WRAP_NARROW = {"pow", "mod", "floordiv", "abs", "sign", "floor", "ceil", "min", "max", "select"} | set(PRIMS)


def const_src(c: ir.Const) -> str:
    v = c.value
    ty = c.ty
    if ty.is_bool:
        return "True" if v else "False"
    if ty.is_int:
        s = str(int(v))
        return s if ty.name == "i64" else f"np.int32({s})"
    if math.isinf(v):
        s = "np.inf" if v > 0 else "-np.inf"
    elif math.isnan(v):
        s = "np.nan"
    else:
        s = repr(float(v))
    return s if ty.name == "f64" else f"np.float32({s})"


class Printer:
    def __init__(self, echo=True):
        self.lines: list[str] = []
        self.prange = "prange"
        self.small_serial = False
        self.private: dict = {}        # array -> per-thread partial array, inside a privatised loop
        self.locmap: dict = {}
        self.last_loc = None
        self.echo = echo
        self.par_ctx = None   # (prange var, race-free arrays) inside a ParFor
        self.index_alias: dict = {}    # loop var -> its unsigned twin, for plain indices (parfor._chunked)
        self.red_alias: dict = {}      # reduction var -> its per-chunk sum (parfor._chunked)

    # ------------------------------------------------------- expressions
    def expr(self, e, want=None) -> str:
        """Source of ``e`` (as type ``want`` when given)."""
        s, p = self._expr(e)
        if want is not None and want.name != e.ty.name:
            return f"{NP_NAME[want.name]}({s})"
        return s

    def fresh(self, name) -> str:
        """``name``, with underscores in front while a local or parameter of the function has it."""
        while name in getattr(self, "names", ()):
            name = "_" + name
        return name

    def index(self, e) -> str:
        """One index of a load or store."""
        if isinstance(e, ir.Var) and e.name in self.index_alias:
            return self.index_alias[e.name]
        return self.expr(e)

    def _paren(self, e, prec, want=None):
        s, p = self._expr(e)
        if want is not None and want.name != e.ty.name:
            return f"{NP_NAME[want.name]}({s})"
        return f"({s})" if p < prec else s

    def _expr(self, e):
        if isinstance(e, ir.Const):
            s = const_src(e)
            return s, (10 if not s.startswith("-") else 5)
        if isinstance(e, ir.Var):
            return self.red_alias.get(e.name, e.name), 10
        if isinstance(e, ir.Load):
            return f"{e.arr}[{', '.join(self.index(i) for i in e.idx)}]", 10
        if isinstance(e, ir.Shape):
            return f"{e.arr}.shape[{e.dim}]", 10
        if isinstance(e, ir.Op):
            return self._op(e)
        raise TypeError(e)

    def _op(self, e):
        op, a = e.op, e.args
        ty = e.ty
        if op in INFIX:
            prec = PREC[op]
            if op in ("lt", "le", "gt", "ge", "eq", "ne"):
                ot = T.promote(a[0].ty, a[1].ty)
            else:
                ot = ty
            right_prec = prec + 1 if op != "pow" else prec
            left_prec = prec if op != "pow" else prec + 1
            # x ** 3 stays an integer power (fast); x ** -1 becomes x ** -1.0, for which numba,
            # like NumPy, gives inf at x = 0 instead of raising ZeroDivisionError
            b_want = None if (op == "pow" and isinstance(a[1], ir.Const) and a[1].ty.is_int
                              and a[1].value >= 0) else ot
            s = f"{self._paren(a[0], left_prec, ot)} {INFIX[op]} {self._paren(a[1], right_prec, b_want)}"
            if op in WRAP_NARROW and ty.name in ("f32", "i32"):
                return f"{NP_NAME[ty.name]}({s})", 10
            if op == "div" and ty.name == "f32":
                return f"{NP_NAME[ty.name]}({s})", 10
            return s, prec
        if op == "neg":
            return f"-{self._paren(a[0], PREC['neg'], ty)}", PREC["neg"]
        if op == "not":
            return f"not {self._paren(a[0], PREC['not'])}", PREC["not"]
        if op in ("and", "or"):
            return f"{self._paren(a[0], PREC[op])} {op} {self._paren(a[1], PREC[op] + 1)}", PREC[op]
        if op == "select":
            s = f"{self._paren(a[1], 1, ty)} if {self._paren(a[0], 1)} else {self._paren(a[2], 1, ty)}"
            return f"({s})", 10
        if op == "cast":
            inner = self.expr(a[0])
            if ty.is_int and a[0].ty.is_float:
                return f"{NP_NAME[ty.name]}(int({inner}))" if ty.name == "i32" else f"int({inner})", 10
            return f"{NP_NAME[ty.name]}({inner})", 10
        prim = PRIMS.get(op)
        if prim is None:
            raise TypeError(f"no spelling for op {op}")
        argt = ty if prim.kind == "same" else None
        if prim.kind == "float":
            argt = ty if ty.is_float else None
        if op in ("randu", "randn"):
            argt = None     # integer keys, passed as they are
        s = prim.spell.format(*[self.expr(x, argt if x.ty.name != getattr(argt, "name", None) else None)
                                for x in a])
        if ty.name in ("f32", "i32"):
            s = f"{NP_NAME[ty.name]}({s})"
        return s, 10

    # -------------------------------------------------------- statements
    def line(self, depth, text):
        self.lines.append("    " * depth + text)

    def block(self, stmts, depth):
        for s in stmts:
            self.stmt(s, depth)
        if all(isinstance(s, ir.Comment) for s in stmts):
            self.line(depth, "pass")

    def stmt(self, s, d):
        loc = s.loc
        if isinstance(s, ir.Comment) and loc is not None:
            self.last_loc = (loc.filename, loc.line)   # "adjoint of <line>" already names it
        elif loc is not None and (loc.filename, loc.line) != self.last_loc:
            self.last_loc = (loc.filename, loc.line)
            text = (loc.source_line() or "").strip()
            if text and self.echo:
                self.line(d, f"# {loc.short()}  {text}")
        if loc is not None:
            self.locmap[len(self.lines) + 1] = loc
        meth = getattr(self, "st_" + type(s).__name__)
        meth(s, d)

    def st_Comment(self, s, d):
        self.line(d, f"# {s.text}")

    def st_Assign(self, s, d):
        ty = s.ty or s.value.ty
        alias = self.red_alias.get(s.target)
        if alias is not None and isinstance(s.value, ir.Op) and s.value.op == "add" \
                and s.value.args[0] == ir.Var(s.value.args[0].ty, s.target):
            self.line(d, f"{alias} = radd({alias}, {self.expr(s.value.args[1], ty)})")
            return
        self.line(d, f"{alias or s.target} = {self.expr(s.value, ty)}")

    def st_Store(self, s, d):
        dt = self.arr_types.get(s.arr)
        idx = ", ".join(self.index(i) for i in s.idx)
        val = self.expr(s.value, dt)
        if s.mode == "set":
            self.line(d, f"{s.arr}[{idx}] = {val}")
            return
        priv = self.private.get(s.arr)
        if priv is not None and s.mode == "add":
            self.line(d, f"{priv}[_c, {idx}] += {val}")
            return
        atomic = self.par_ctx is not None and s.arr not in self.par_ctx[1]
        if s.mode == "add":
            if atomic:
                self.line(d, f"atomic_add({s.arr}, ({idx},), {val})" if len(s.idx) == 1 else
                          f"atomic_add({s.arr}, ({idx}), {val})")
            else:
                self.line(d, f"{s.arr}[{idx}] += {val}")
            return
        fn = s.mode
        if atomic:
            self.line(d, f"atomic_{fn}({s.arr}, ({idx}{',' if len(s.idx) == 1 else ''}), {val})")
        else:
            self.line(d, f"{s.arr}[{idx}] = {fn}({s.arr}[{idx}], {val})")

    def st_If(self, s, d):
        self.line(d, f"if {self.expr(s.cond)}:")
        self.block(s.body, d + 1)
        orelse = s.orelse
        while len(orelse) == 1 and isinstance(orelse[0], ir.If) and orelse[0].orelse is not None:
            inner = orelse[0]
            self.line(d, f"elif {self.expr(inner.cond)}:")
            self.block(inner.body, d + 1)
            orelse = inner.orelse
        if orelse:
            self.line(d, "else:")
            self.block(orelse, d + 1)

    def _range(self, lo, hi, reverse):
        if reverse:
            return f"range({self.expr(hi)} - 1, {self.expr(lo)} - 1, -1)"
        if isinstance(lo, ir.Const) and lo.value == 0:
            return f"range({self.expr(hi)})"
        return f"range({self.expr(lo)}, {self.expr(hi)})"

    def serial_for(self, var, lo, hi, d, note="") -> int:
        """Print ``for var in range(lo, hi)``; return the depth of its body.

        A constant start of 2 or more is counted from zero (``for _k in range(hi - lo): var = _k + lo``):
        numba 0.68's loops over ``range(2, n)`` are not vectorised by LLVM (stencil loops ran 3x slower,
        measured), those over ``range(n - 2)`` are."""
        if isinstance(lo, ir.Const) and isinstance(lo.value, int) and lo.value >= 2:
            k = self.fresh(f"_k_{var}")
            self.line(d, f"for {k} in range({self.expr(hi)} - {lo.value}):{note}")
            self.line(d + 1, f"{var} = {k} + {lo.value}")
            return d + 1
        self.line(d, f"for {var} in {self._range(lo, hi, False)}:{note}")
        return d + 1

    def st_For(self, s, d):
        if s.reverse:
            self.line(d, f"for {s.var} in {self._range(s.start, s.stop, s.reverse)}:")
            self.block(s.body, d + 1)
        else:
            self.block(s.body, self.serial_for(s.var, s.start, s.stop, d))

    def st_TimeLoop(self, s, d):
        self.line(d, f"for {s.var} in {self._range(s.start, s.stop, s.reverse)}:  # ds.serial")
        self.block(s.body, d + 1)

    def st_While(self, s, d):
        self.line(d, f"while {self.expr(s.cond)}:")
        self.block(s.body, d + 1)

    def st_MatMul(self, s, d):
        a = f"{s.a}.T" if s.ta else s.a
        b = f"{s.b}.T" if s.tb else s.b
        self.line(d, f"{s.out} += np.dot({a}, {b})  # BLAS")

    def st_Break(self, s, d):
        self.line(d, "break")

    def st_Continue(self, s, d):
        self.line(d, "continue")

    def st_Push(self, s, d):
        ty = T.i64 if s.stack.startswith("i") else T.f64
        self.line(d, f"_stack_{s.stack}.append({self.expr(s.value, ty)})")

    def st_Pop(self, s, d):
        src = f"_stack_{s.stack}.pop()"
        if s.ty.name in ("f32", "i32"):
            src = f"{NP_NAME[s.ty.name]}({src})"
        elif s.ty.is_bool:
            src = f"{src} != 0"
        self.line(d, f"{s.target} = {src}")

    def declare_stacks(self, names, d):
        for n in names:
            init = "0" if n.startswith("i") else "0.0"
            self.line(d, f"_stack_{n} = [{init}]  # a value stack, grown as needed")
            self.line(d, f"_stack_{n}.pop()")

    def st_ParFor(self, s, d):
        from .parfor import emit_parfor
        emit_parfor(self, s, d)


def _stacks(stmts, into_par: bool) -> list:
    """Names of the value stacks pushed in ``stmts`` (inside ParFors only if ``into_par``)."""
    out = set()
    for s in stmts:
        if isinstance(s, ir.Push):
            out.add(s.stack)
        if isinstance(s, ir.ParFor) and not into_par:
            continue
        for b in ir.child_blocks(s):
            out |= set(_stacks(b, into_par))
    return sorted(out)


def print_function(fn: ir.Function, header_lines=(), decorator: str | None = None, name: str | None = None,
                   locmap: dict | None = None, echo: bool = True, deterministic: bool = False,
                   serial: bool = False, small_serial: bool = False) -> str:
    """The function as Python source (header lines first: imports, a comment).

    ``locmap`` (if given) is filled with generated line number -> user Loc.
    """
    p = Printer(echo)
    p.deterministic = deterministic
    p.prange = "range" if serial else "prange"
    p.small_serial = small_serial
    p.arr_types = {n: t.dtype for n, t in fn.params if isinstance(t, ir.ArrayInfo)}
    p.names = set(fn.locals) | {n for n, _ in fn.params}
    p.local_types = dict(fn.locals)
    p.lines.extend(header_lines)
    if decorator:
        p.lines.append(decorator)
    params = ", ".join(n for n, _ in fn.params)
    p.lines.append(f"def {name or fn.name}({params}):")
    p.declare_stacks(_stacks(fn.body, False), 1)
    p.block(fn.body, 1) if (fn.body or not fn.results) else None
    if fn.results:
        rs = [p.expr(r) for r in fn.results]
        p.line(1, "return " + (rs[0] if len(rs) == 1 else "(" + ", ".join(rs) + ")"))
    if locmap is not None:
        locmap.update(p.locmap)
    return "\n".join(p.lines) + "\n"
