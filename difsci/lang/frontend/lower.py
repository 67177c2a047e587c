"""Lower a kernel's or func's Python AST to typed scalar IR.

Type inference runs as a fixpoint over the lowering: each local's type is the
unification of the types assigned to it (``s = 0`` then ``s = s + 0.5`` makes
``s`` a float); when a pass widens a type, the body is lowered again.
Vectors and matrices are scalarised here into component locals.
"""
from __future__ import annotations

import ast

from ... import errors
from .. import build as B
from .. import ir
from .. import types as T
from ..source import ParsedSource
from .exprs import ExprLowering
from .values import CT, VV, Arr, Tup, type_of

MAX_PASSES = 8
ACTIVE: list = []    # the sources being lowered, innermost last (a func calling itself is an error)


class FrameReturn:
    def __init__(self):
        self.values = []        # (loc, value) of each return
        self.flag = None        # name of the "returned" flag when returns are early
        self.slots = None       # result variable names


class Lowerer(ExprLowering):
    """One kernel or func specialised on its parameter types."""

    def __init__(self, parsed: ParsedSource, namespace, params, is_kernel: bool, name: str):
        self.parsed = parsed
        self.ns = namespace          # callable(name) -> python object or raises KeyError
        self.param_types = params    # list of (name, type): Scalar | Vec | Mat | ArrayInfo
        self.is_kernel = is_kernel
        self.name = name
        self.var_types: dict = {}
        self.local_names = _assigned_names(parsed.tree)
        self.ret_type = None         # a func's result type, unified over its returns and passes
        # every name the user wrote: generated names (components, inlined locals) must avoid them
        self.user_names = {n.id for n in ast.walk(parsed.tree) if isinstance(n, ast.Name)} | \
            {p for p, _ in params}

    # ------------------------------------------------------------ driver
    def run(self) -> ir.Function:
        ACTIVE.append(self.parsed)
        try:
            for _ in range(MAX_PASSES):
                self.dirty = False
                fn = self._pass()
                if not self.dirty:
                    return fn
        finally:
            ACTIVE.pop()
        raise errors.InternalCompilerError("infer", f"types of `{self.name}` did not settle")

    def comp_names(self, name, n):
        """The locals holding the ``n`` components of vector/matrix ``name``: ``name_0`` …, with more
        underscores where the user also wrote such a name."""
        sep = "_"
        while any(f"{name}{sep}{k}" in self.user_names for k in range(n)):
            sep += "_"
        return [f"{name}{sep}{k}" for k in range(n)]

    def _pass(self) -> ir.Function:
        self.ntemp = 0
        self.inline_counts = {}      # per pass, so the first call of `f` inlines as `f_...` on every pass
        self.env = {}
        self.locals_out = {}
        self.blocks = [[]]
        self.level = "top" if self.is_kernel else "inner"
        self.loop_depth = 0
        self.par_outer = None
        self.par_only = set()
        self.ret = FrameReturn()
        params, groups = [], []
        for pname, pty in self.param_types:
            if isinstance(pty, ir.ArrayInfo):
                self.env[pname] = ("ct", Arr(pname, pty))
                params.append((pname, pty))
                groups.append((pname, pty, [pname]))
            elif isinstance(pty, (T.Vec, T.Mat)):
                names = self.comp_names(pname, pty.ncomp)
                self.env[pname] = ("v", names, pty)
                params += [(n, pty.dtype) for n in names]
                groups.append((pname, pty, names))
            elif isinstance(pty, T.Scalar):
                self.env[pname] = ("s", pname, pty)
                params.append((pname, pty))
                groups.append((pname, pty, [pname]))
            else:  # a compile-time value (a func passed as an argument, a static int)
                self.env[pname] = ("ct", CT(pty))
        if not self.is_kernel:
            self._scan_returns()
            if self.ret.early:
                self.locals_out["_returned"] = T.boolean
                self.emit(ir.Assign("_returned", B.const(False), T.boolean, loc=self.parsed.loc(self.parsed.tree)))
        body = self.parsed.tree.body
        self.lower_block(body)
        stmts = self.blocks[0]
        results, rtype = self._results()
        for n, t in params:
            if isinstance(t, T.Scalar):
                self.locals_out.setdefault(n, t)
        return ir.Function(self.name, params, stmts, tuple(results), rtype, groups, dict(self.locals_out),
                           self.is_kernel, self.parsed.loc(self.parsed.tree))

    # ----------------------------------------------------------- helpers
    def err(self, node, msg, hint=None, cls=errors.CompileError):
        return cls(msg, self.parsed.loc(node) if node is not None else None, hint, self.name)

    def emit(self, stmt):
        self.blocks[-1].append(stmt)

    def loc(self, node):
        return self.parsed.loc(node)

    def temp(self, expr, node=None, force=False):
        """Store ``expr`` in a fresh temporary; constants (and names, unless ``force``) stay as they are."""
        if isinstance(expr, ir.Const) or (isinstance(expr, ir.Var) and not force):
            return expr
        name = f"_t{self.ntemp}"
        self.ntemp += 1
        ty = expr.ty
        self.locals_out[name] = ty
        self.emit(ir.Assign(name, expr, ty, loc=self.cur_loc))
        return ir.Var(ty, name)

    def sub_block(self, stmts):
        self.blocks.append([])
        self.lower_block(stmts)
        return self.blocks.pop()

    # ---------------------------------------------------------- variables
    def declare(self, name, value, node):
        """Assign ``value`` to local ``name``; returns the binding."""
        if isinstance(value, CT) or isinstance(value, Arr):
            self.env[name] = ("ct", value)
            return
        if self.par_outer is not None and name in self.par_outer:
            raise self.err(node, f"a parallel loop cannot assign `{name}`, a variable defined outside it",
                           hint="iterations run at once: accumulate into an array element (`out[None] += ...`) instead")
        if isinstance(value, Tup):
            raise self.err(node, f"`{name}` would hold a tuple; unpack it instead",
                           hint=f"write `a, b = ...` rather than `{name} = ...`")
        vty = type_of(value)
        old = self.var_types.get(name)
        new = T.unify(old, vty)
        if new is None:
            raise self.err(node, f"`{name}` is assigned a {vty} here but a {old} elsewhere",
                           hint="use a different variable name for values of a different kind")
        if new != old:
            self.var_types[name] = new
            if old is not None:
                self.dirty = True
        ty = self.var_types[name]
        if isinstance(ty, T.Scalar):
            self.env[name] = ("s", name, ty)
            self.locals_out[name] = ty
            self.emit(ir.Assign(name, B.cast(value, ty), ty, loc=self.cur_loc))
        else:
            names = self.comp_names(name, ty.ncomp)
            self.env[name] = ("v", names, ty)
            for n, c in zip(names, value.comps):
                self.locals_out[n] = ty.dtype
                if isinstance(c, ir.Var) and c.name == n and c.ty == ty.dtype:
                    continue      # an unchanged component (v[k] = ... touched another one)
                self.emit(ir.Assign(n, B.cast(c, ty.dtype), ty.dtype, loc=self.cur_loc))

    def read_local(self, name, node):
        b = self.env.get(name)
        if b is None and name in self.par_only and self.level in ("top", "time"):
            raise self.err(node, f"`{name}` is defined inside a parallel loop and does not exist after it",
                           hint="write values you need later into an array")
        if b is None:
            ty = self.var_types.get(name)
            if ty is None:
                # assigned later in program order (e.g. in a loop); widen on the next pass
                self.dirty = True
                ty = T.WEAK_FLOAT
                self.var_types[name] = None
            if isinstance(ty, T.Scalar):
                b = ("s", name, ty)
            else:
                b = ("v", self.comp_names(name, ty.ncomp), ty)
            self.env[name] = b
        if b[0] == "s":
            ty = self.var_types.get(name) or b[2]
            self.locals_out.setdefault(name, ty)
            return ir.Var(ty, b[1])
        if b[0] == "v":
            ty = self.var_types.get(name) or b[2]
            for n in b[1]:
                self.locals_out.setdefault(n, ty.dtype)
            return VV([ir.Var(ty.dtype, n) for n in b[1]], ty)
        return b[1]

    def is_local(self, name):
        return name in self.env or name in self.local_names

    # ------------------------------------------------------------ returns
    def _scan_returns(self):
        rets = [n for n in ast.walk(self.parsed.tree) if isinstance(n, ast.Return)]
        body = self.parsed.tree.body
        last_only = len(rets) <= 1 and (not rets or (body and body[-1] is rets[0]))
        self.ret.early = not last_only

    def _results(self):
        if self.is_kernel:
            return [], None
        if not self.ret.values:
            return [], None
        if not self.ret.early:
            v = self.ret.values[0][1]
            return _flatten(v), type_of(v)
        return [ir.Var(t, n) for n, t in self.ret.slots], self.ret.rtype

    def lower_return(self, node):
        if self.is_kernel:
            if node.value is None:
                raise self.err(node, "`return` in a kernel is not supported",
                               hint="skip the rest with `if`; kernels write their results into arrays")
            raise self.err(node, "a kernel cannot return a value", hint="write results into an array argument")
        value = self.lower_expr(node.value) if node.value is not None else None
        if value is None:
            raise self.err(node, "a func must return a value")
        if isinstance(value, (CT, Arr)):
            raise self.err(node, "a func returns numbers, vectors or matrices (or a tuple of them)")
        self.ret.values.append((self.loc(node), value))
        if not self.ret.early:
            return
        rty = type_of(value)
        # the result type unifies over every return, like a local's type over its assignments
        known = self.ret_type
        u = T.unify(known, rty)
        if u is None:
            raise self.err(node, f"this return gives a {rty}, an earlier one a {known}",
                           hint="return values of the same kind (numbers, or vectors of one shape) everywhere")
        if u != known:
            self.ret_type = u
            self.dirty = self.dirty or known is not None
        if getattr(self.ret, "rtype", None) is None:
            self.ret.rtype = self.ret_type
            self.ret.slots = [(f"_ret{k}", t) for k, t in enumerate(_flat_types(self.ret_type))]
        for (n, t), c in zip(self.ret.slots, _flatten(value)):
            self.locals_out[n] = t
            self.emit(ir.Assign(n, B.cast(c, t), t, loc=self.loc(node)))
        self.locals_out["_returned"] = T.boolean
        self.emit(ir.Assign("_returned", B.const(True), T.boolean, loc=self.loc(node)))
        self.emit(ir.Break(loc=self.loc(node)) if self.loop_depth else ir.Comment("return", loc=self.loc(node)))


def _flatten(v):
    if isinstance(v, VV):
        return list(v.comps)
    if isinstance(v, Tup):
        return [c for i in v.items for c in _flatten(i)]
    return [v]


def _flat_types(t):
    if isinstance(t, (T.Vec, T.Mat)):
        return [t.dtype] * t.ncomp
    if isinstance(t, T.TupleType):
        return [x for i in t.items for x in _flat_types(i)]
    return [t]


def _assigned_names(fdef) -> set:
    names = set()
    for node in ast.walk(fdef):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names
