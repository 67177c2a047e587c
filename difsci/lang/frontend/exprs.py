"""Expression lowering: names, constants, operators, indexing, calls."""
from __future__ import annotations

import ast
import math
import types as pytypes

import numpy as np

from .. import build as B
from .. import intrinsics as I
from .. import ir
from .. import types as T
from . import vecops as V
from .calls import CallLowering
from .values import CT, VV, Arr, Tup

BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.FloorDiv: "floordiv",
          ast.Mod: "mod", ast.Pow: "pow"}
CMPOPS = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq", ast.NotEq: "ne"}
COMPONENTS = {"x": 0, "y": 1, "z": 2, "w": 3}


def python_value(obj, err):
    """Turn an outside Python object into a lowered value (numbers become constants)."""
    if isinstance(obj, bool) or isinstance(obj, np.bool_):
        return B.Const(T.boolean, bool(obj))
    if isinstance(obj, np.generic) and obj.dtype.kind in "fi":
        # before `float`: np.float64 is a float too, but keeps its type (NEP 50)
        ty = T.from_numpy(obj.dtype)
        return B.Const(ty, obj.item())
    if isinstance(obj, (int, float)):
        return B.const(obj)
    if isinstance(obj, tuple):
        return Tup([python_value(o, err) for o in obj])
    if isinstance(obj, np.ndarray) and obj.ndim in (1, 2) and obj.size <= 16 and obj.dtype.kind == "f":
        st = T.from_numpy(obj.dtype)
        comps = [B.Const(st, float(v)) for v in obj.ravel()]
        return V.vec(comps, st) if obj.ndim == 1 else V.mat(comps, *obj.shape, st)
    return CT(obj)


class ExprLowering(CallLowering):
    def lower_expr(self, node):
        self.cur_node = node
        meth = getattr(self, "ex_" + type(node).__name__, None)
        if meth is None:
            raise self.err(node, f"{_describe(node)} is not supported in a kernel",
                           hint="kernels support arithmetic, comparisons, calls, indexing and attributes")
        return meth(node)

    def scalar(self, node, what="a number"):
        v = self.lower_expr(node)
        return self.as_scalar(v, node, what)

    def as_scalar(self, v, node, what="a number"):
        if isinstance(v, ir.Expr):
            return v
        if isinstance(v, CT) and isinstance(v.obj, (int, float, bool, np.generic)):
            return python_value(v.obj, None)
        raise self.err(node, f"expected {what} here, got {_kind(v)}")

    # ----------------------------------------------------------- leaves
    def ex_Constant(self, node):
        if isinstance(node.value, (bool, int, float)):
            return python_value(node.value, None)
        if node.value is None:
            return CT(None)
        raise self.err(node, f"the constant {node.value!r} is not supported in a kernel")

    def ex_Name(self, node):
        name = node.id
        if self.is_local(name):
            return self.read_local(name, node)
        try:
            obj = self.ns(name)
        except KeyError:
            raise self.err(node, f"unknown name `{name}`",
                           hint="kernels see their arguments, locals, and the module's globals at compile time") from None
        return python_value(obj, None)

    def ex_Tuple(self, node):
        return Tup([self.lower_expr(e) for e in node.elts])

    ex_List = ex_Tuple

    # -------------------------------------------------------- operators
    def ex_BinOp(self, node):
        a = self.lower_expr(node.left)
        b = self.lower_expr(node.right)
        return self.binary(node, type(node.op), a, b)

    def binary(self, node, opcls, a, b):
        a = self._num(a, node.left if hasattr(node, "left") else node)
        b = self._num(b, node.right if hasattr(node, "right") else node)
        if opcls is ast.MatMult:
            if not (isinstance(a, VV) and isinstance(b, VV)):
                raise self.err(node, "`@` needs vectors or matrices on both sides")
            return self._vec(node, V.matmul, a, b)
        op = BINOPS.get(opcls)
        if op is None:
            raise self.err(node, f"the operator {opcls.__name__} is not supported",
                           hint="use + - * / // % ** and @")
        if isinstance(a, VV) or isinstance(b, VV):
            if op not in ("add", "sub", "mul", "div", "pow", "mod", "floordiv"):
                raise self.err(node, f"`{op}` of vectors is not supported")
            return self._vec(node, V.elementwise, op, a, b)
        if op in ("floordiv", "mod") and a.ty.is_float and not b.ty.is_float:
            b = B.cast(b, a.ty)
        return B.binop(op, a, b)

    def _num(self, v, node):
        if isinstance(v, (ir.Expr, VV)):
            return v
        return self.as_scalar(v, node)

    def _vec(self, node, fn, *args):
        try:
            return fn(*args)
        except ValueError as e:
            raise self.err(node, str(e)) from None

    def ex_UnaryOp(self, node):
        v = self.lower_expr(node.operand)
        if isinstance(node.op, ast.Not):
            return B.lnot(self.truth(v, node.operand))
        v = self._num(v, node.operand)
        if isinstance(v, ir.Expr) and v.ty.is_bool:
            v = B.cast(v, T.WEAK_INT)      # -True is -1, as in Python
        if isinstance(node.op, ast.USub):
            return V.unary(B.neg, v) if isinstance(v, VV) else B.neg(v)
        if isinstance(node.op, ast.UAdd):
            return v
        raise self.err(node, "`~` is not supported", hint="use `not` for booleans")

    def truth(self, v, node):
        v = self.as_scalar(v, node, "a condition")
        if v.ty.is_bool:
            return v
        return B.compare("ne", v, B.zero(v.ty))

    def ex_BoolOp(self, node):
        op = "and" if isinstance(node.op, ast.And) else "or"
        out = self.truth(self.lower_expr(node.values[0]), node.values[0])
        for e in node.values[1:]:
            out = B.logical(op, out, self.truth(self.lower_expr(e), e))
        return out

    def ex_Compare(self, node):
        left = self.scalar(node.left)
        out = None
        for opn, rnode in zip(node.ops, node.comparators):
            op = CMPOPS.get(type(opn))
            if op is None:
                raise self.err(node, f"the comparison {type(opn).__name__} is not supported")
            right = self.scalar(rnode)
            c = B.compare(op, left, right)
            out = c if out is None else B.logical("and", out, c)
            left = right
        return out

    def ex_IfExp(self, node):
        c = self.truth(self.lower_expr(node.test), node.test)
        a = self.lower_expr(node.body)
        b = self.lower_expr(node.orelse)
        if isinstance(a, VV) and isinstance(b, VV):
            return V.like(a, [B.select(c, x, y) for x, y in zip(a.comps, b.comps)])
        return B.select(c, self.as_scalar(a, node.body), self.as_scalar(b, node.orelse))

    # ------------------------------------------------------- attributes
    def ex_Attribute(self, node):
        base = self.lower_expr(node.value)
        attr = node.attr
        if isinstance(base, CT):
            obj = base.obj
            if isinstance(obj, pytypes.ModuleType) and obj is math and attr in I.MATH_CONSTANTS:
                return B.const(I.MATH_CONSTANTS[attr])
            try:
                return python_value(getattr(obj, attr), None)
            except AttributeError:
                raise self.err(node, f"`{attr}` is not an attribute of {obj!r}") from None
        if isinstance(base, Arr):
            if attr == "shape":
                return Tup([ir.Shape(T.WEAK_INT, base.name, d) for d in range(base.info.logical_ndim)])
            if attr == "ndim":
                return B.const(base.info.logical_ndim)
            raise self.err(node, f"arrays have `.shape` and `.ndim` inside kernels, not `.{attr}`")
        if attr in ("shape", "ndim"):
            self.expect_array(node.value, base)
        if isinstance(base, VV):
            if attr == "T" and base.is_mat:
                return V.transpose(base)
            if attr in COMPONENTS and not base.is_mat and COMPONENTS[attr] < base.dtype.n:
                return base.comps[COMPONENTS[attr]]
        raise self.err(node, f"`.{attr}` is not supported on {_kind(base)}")

    # --------------------------------------------------------- indexing
    def index_values(self, node):
        s = node.slice
        if isinstance(s, ast.Tuple):
            return [self.lower_expr(e) for e in s.elts], s.elts
        return [self.lower_expr(s)], [s]

    def int_index(self, v, node):
        v = self.as_scalar(v, node, "an integer index")
        if not (v.ty.is_int or v.ty.is_bool):
            raise self.err(node, f"an index must be an integer, not {v.ty}",
                           hint="convert with int(...) or ds.i32(...)")
        return B.cast(v, v.ty.strong()) if v.ty.is_bool else v

    def ex_Subscript(self, node):
        base = self.lower_expr(node.value)
        if isinstance(base, Arr):
            return self.load(base, node)
        idx, nodes = self.index_values(node)
        if isinstance(base, Tup):
            if len(idx) != 1 or not isinstance(idx[0], ir.Const):
                raise self.err(node, "a tuple is indexed by a constant integer")
            try:
                return base.items[idx[0].value]
            except IndexError:
                raise self.err(node, "tuple index out of range") from None
        if isinstance(base, VV):
            return self.component(base, [self.int_index(i, n) for i, n in zip(idx, nodes)], node)
        self.expect_array(node.value, base)
        raise self.err(node, f"{_kind(base)} cannot be indexed")

    def expect_array(self, node, value):
        """A kernel parameter used as an array but passed something else: a launch TypeError
        naming the kernel and the parameter (API.md §9), raised before anything runs."""
        params = dict(self.param_types)
        if not (self.is_kernel and isinstance(node, ast.Name) and node.id in params
                and not isinstance(params[node.id], ir.ArrayInfo) and node.id not in self.var_types):
            return
        from ..specialize import describe
        loc = self.loc(node)
        raise TypeError(f"kernel `{self.name}`, parameter `{node.id}`: expected an array, got "
                        f"{describe(params[node.id])} (the kernel uses it as an array at "
                        f"{loc.filename}:{loc.line})")

    def array_index(self, arr: Arr, node):
        s = node.slice
        info = arr.info
        if info.logical_ndim == 0:
            if (isinstance(s, ast.Constant) and s.value is None) or (isinstance(s, ast.Tuple) and not s.elts):
                return [B.const(0)]
            raise self.err(node, f"`{arr.name}` is a 0-d array: write `{arr.name}[None]`")
        idx, nodes = self.index_values(node)
        if len(idx) != info.logical_ndim:
            raise self.err(node, f"`{arr.name}` has {info.logical_ndim} dimension(s) but is indexed with {len(idx)}",
                           hint="index every dimension: slices are not supported inside kernels")
        return [self.int_index(i, n) for i, n in zip(idx, nodes)]

    def load(self, arr: Arr, node):
        idx = self.array_index(arr, node)
        info = arr.info
        if isinstance(info.elem, (T.Vec, T.Mat)):
            comps = [ir.Load(info.dtype, arr.name, tuple(idx) + tuple(B.const(k) for k in sub))
                     for sub in _component_indices(info.elem)]
            return VV(comps, info.elem)
        return ir.Load(info.dtype, arr.name, tuple(idx))

    def component(self, v: VV, idx, node):
        if v.is_mat:
            n, m = v.dtype.n, v.dtype.m
            if len(idx) == 1:   # a row
                r = idx[0]
                return V.vec([self._pick([v.comps[rr * m + c] for rr in range(n)], r) for c in range(m)])
            if len(idx) != 2:
                raise self.err(node, "a matrix entry is written M[r, c]")
            r, c = idx
            rows = [self._pick([v.comps[rr * m + cc] for cc in range(m)], c) for rr in range(n)]
            return self._pick(rows, r)
        if len(idx) != 1:
            raise self.err(node, "a vector component is written v[k]")
        return self._pick(v.comps, idx[0])

    def _pick(self, comps, k):
        if isinstance(k, ir.Const):
            if not 0 <= k.value < len(comps):
                raise self.err(self.cur_node, f"component index {k.value} out of range for {len(comps)} components")
            return comps[k.value]
        out = comps[-1]
        for j in range(len(comps) - 2, -1, -1):
            out = B.select(B.compare("eq", k, B.const(j)), comps[j], out)
        return out


def _component_indices(elem):
    if isinstance(elem, T.Vec):
        return [(k,) for k in range(elem.n)]
    return [(r, c) for r in range(elem.n) for c in range(elem.m)]


def _kind(v):
    if isinstance(v, VV):
        return f"a {v.dtype}"
    if isinstance(v, Arr):
        return f"the array `{v.name}`"
    if isinstance(v, Tup):
        return "a tuple"
    if isinstance(v, CT):
        return f"{v.obj!r}"
    if isinstance(v, ir.Expr):
        return f"a {v.ty} number"
    return repr(v)


def _describe(node):
    names = {"Lambda": "a lambda", "ListComp": "a list comprehension", "Dict": "a dict", "Set": "a set",
             "JoinedStr": "an f-string", "Starred": "`*` unpacking", "NamedExpr": "`:=`",
             "Await": "`await`", "Yield": "`yield`", "GeneratorExp": "a generator expression",
             "Slice": "a slice", "DictComp": "a dict comprehension", "SetComp": "a set comprehension"}
    return names.get(type(node).__name__, f"`{type(node).__name__}`")

