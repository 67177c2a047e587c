"""Calls inside kernels: intrinsics, casts, vector constructors, funcs (inlined)."""
from __future__ import annotations

import ast
import builtins

import numpy as np

from .. import build as B
from .. import intrinsics as I
from .. import ir
from .. import types as T
from . import vecops as V
from .stmts import StmtLowering
from .values import CT, VV, Arr, Tup, type_of

UNARY_MATH = set(I.MATH_NAMES) - {"atan2", "hypot"} | {"abs", "sign"}
NUMPY_CASTS = (np.float32, np.float64, np.int32, np.int64)


class CallLowering(StmtLowering):
    def ex_Call(self, node):
        callee = self.lower_expr(node.func)
        if node.keywords:
            if not (isinstance(callee, CT) and _is_transform(callee.obj)):
                raise self.err(node.keywords[0].value, "keyword arguments are not supported in kernel calls",
                               hint="pass arguments by position")
        if not isinstance(callee, CT):
            raise self.err(node.func, "this is not something a kernel can call")
        obj = callee.obj
        if _is_transform(obj):  # ds.grad(f, argnums=1) evaluated at compile time
            args = [self._compile_time(a) for a in node.args]
            kws = {k.arg: self._compile_time(k.value) for k in node.keywords}
            return CT(obj(*args, **kws))
        if obj in (T.vec, T.mat):   # ds.vec(3, ds.f32): a type, built at compile time
            return CT(obj(*[self._compile_time(a) for a in node.args]))
        args = [self.lower_expr(a) for a in node.args]
        name = I.intrinsic_name(obj)
        if name is not None:
            return self.call_intrinsic(name, args, node)
        if isinstance(obj, T.Scalar) or obj in (builtins.float, builtins.int, builtins.bool):
            return self.call_cast(obj, args, node)
        if obj in NUMPY_CASTS:      # np.float32(v) ... as in numba
            return self.call_cast(T.from_numpy(obj), args, node)
        if isinstance(obj, (T.Vec, T.Mat)):
            return self.construct(obj, args, node)
        if obj is builtins.len:
            if len(args) != 1 or not isinstance(args[0], Arr):
                if len(args) == 1:
                    self.expect_array(node.args[0], args[0])
                raise self.err(node, "len(...) takes an array")
            return ir.Shape(T.WEAK_INT, args[0].name, 0)
        if hasattr(obj, "specialize"):
            return self.inline_call(obj, args, node)
        if obj in (builtins.range,) or isinstance(obj, I._Marker):
            raise self.err(node, f"`{getattr(obj, '__name__', getattr(obj, 'name', obj))}` is only allowed as a for-loop iterator")
        raise self.err(node.func, f"cannot call {obj!r} inside a kernel",
                       hint="call @ds.func functions, ds.* math and vector functions, or casts")

    def _compile_time(self, node):
        v = self.lower_expr(node)
        if isinstance(v, CT):
            return v.obj
        if isinstance(v, ir.Const):
            return v.value
        if isinstance(v, Tup) and all(isinstance(i, ir.Const) for i in v.items):
            return tuple(i.value for i in v.items)
        raise self.err(node, "this argument must be known at compile time")

    # ------------------------------------------------------------ casts
    def call_cast(self, obj, args, node):
        if len(args) != 1:
            raise self.err(node, "a cast takes one value")
        v = args[0]
        if obj is builtins.float:
            ty = T.f64
        elif obj is builtins.int:
            ty = T.i64
        elif obj is builtins.bool:
            return self.truth(v, node)
        else:
            ty = obj
        if isinstance(v, VV):
            return V.unary(lambda c: B.cast(c, ty), v) if ty.is_float else self._bad(node, "vectors cast to float types only")
        v = self.as_scalar(v, node)
        if ty.is_int and v.ty.is_float:
            return B.cast(v, ty)  # truncation toward zero, as in Python's int()
        return B.cast(v, ty)

    def _bad(self, node, msg):
        raise self.err(node, msg)

    def construct(self, ty, args, node):
        comps = []
        for a, an in zip(args, node.args):
            if isinstance(a, VV):
                comps += a.comps
            elif isinstance(a, Tup):
                comps += [self.as_scalar(i, an) for i in a.items]
            else:
                comps.append(self.as_scalar(a, an))
        if len(comps) == 1 and ty.ncomp > 1:
            comps = comps * ty.ncomp
        if len(comps) != ty.ncomp:
            raise self.err(node, f"{ty} takes {ty.ncomp} components, got {len(comps)}")
        if isinstance(ty, T.Vec):
            return V.vec(comps, ty.dtype)
        return V.mat(comps, ty.n, ty.m, ty.dtype)

    # -------------------------------------------------------- intrinsics
    def call_intrinsic(self, name, args, node):
        def S(i):
            return self.as_scalar(args[i], node.args[i])
        nargs = len(args)
        if name in UNARY_MATH:
            self._arity(node, name, nargs, 1)
            if isinstance(args[0], VV):
                return V.unary(lambda c: B.call(name, c), args[0])
            return B.call(name, S(0))
        if name in ("atan2", "hypot"):
            self._arity(node, name, nargs, 2)
            return B.call(name, S(0), S(1))
        if name == "pow":
            self._arity(node, name, nargs, 2)
            return self.binary(node, ast.Pow, args[0], args[1])
        if name in ("min", "max"):
            if nargs < 2:
                raise self.err(node, f"{name}(...) takes two or more numbers inside kernels")
            out = args[0]
            for k in range(1, nargs):
                out = self._minmax(name, out, args[k], node)
            return out
        if name == "clamp":
            self._arity(node, name, nargs, 3)
            return self._minmax("min", self._minmax("max", args[0], args[1], node), args[2], node)
        if name == "select":
            self._arity(node, name, nargs, 3)
            c = self.truth(args[0], node.args[0])
            if isinstance(args[1], VV) or isinstance(args[2], VV):
                return self._elementwise(node, name, lambda x, y: B.select(c, x, y), args[1], args[2])
            return B.select(c, S(1), S(2))
        if name in ("atomic_add", "atomic_min", "atomic_max"):
            return self.call_atomic(name, args, node)
        if name == "matmul":
            return self.call_matmul(args, node)
        if name in ("randu", "randn"):
            if not 1 <= nargs <= 4:
                raise self.err(node, f"ds.{name} takes 1 to 4 integer keys")
            keys = [self.int_index(a, n) for a, n in zip(args, node.args)] + [B.const(0)] * (4 - nargs)
            return B.call(name, *[B.cast(k, T.i64) for k in keys])
        if name == "identity":
            n = args[0]
            if not isinstance(n, ir.Const):
                raise self.err(node, "ds.identity(n) needs a constant n")
            return V.identity(n.value)
        return self.call_vector_fn(name, args, node)

    def _arity(self, node, name, got, want):
        if got != want:
            raise self.err(node, f"{name}(...) takes {want} argument(s), got {got}")

    def _minmax(self, name, a, b, node):
        if isinstance(a, VV) or isinstance(b, VV):
            return self._elementwise(node, name, lambda x, y: B.call(name, x, y), a, b)
        a, b = self.as_scalar(a, node), self.as_scalar(b, node)
        ty = T.promote(a.ty, b.ty)
        return B.call(name, B.cast(a, ty), B.cast(b, ty))

    def _elementwise(self, node, name, fn, a, b):
        """``fn`` over the components of ``a`` and ``b``: vectors of one shape, or a vector and a number."""
        if isinstance(a, VV) and isinstance(b, VV) and a.dtype.shape != b.dtype.shape:
            raise self.err(node, f"ds.{name} of a {a.dtype} and a {b.dtype}: the shapes differ")
        ref = a if isinstance(a, VV) else b
        n = len(ref.comps)
        aa = a.comps if isinstance(a, VV) else [self.as_scalar(a, node)] * n
        bb = b.comps if isinstance(b, VV) else [self.as_scalar(b, node)] * n
        return V.like(ref, [fn(x, y) for x, y in zip(aa, bb)])

    def call_vector_fn(self, name, args, node):
        for a, an in zip(args, node.args):
            if not isinstance(a, VV) and name not in ("zeros_like",):
                raise self.err(an, f"ds.{name} takes vectors or matrices")
        bind = self.temp
        table = {
            "dot": lambda: V.dot(*args), "cross": lambda: V.cross(*args), "norm": lambda: V.norm(args[0]),
            "normalize": lambda: V.normalize(args[0], bind), "outer": lambda: V.outer(*args),
            "transpose": lambda: V.transpose(args[0]), "trace": lambda: V.trace(args[0]),
            "det": lambda: V.det(args[0]), "inverse": lambda: V.inverse(args[0], bind),
            "polar_decompose2d": lambda: Tup(list(V.polar_decompose2d(args[0], bind))),
            "svd2d": lambda: Tup(list(V.svd2d(args[0], bind))),
            "zeros_like": lambda: (V.like(args[0], [B.zero(c.ty) for c in args[0].comps])
                                   if isinstance(args[0], VV) else B.zero(self.as_scalar(args[0], node).ty)),
        }
        if name not in table:
            raise self.err(node, f"ds.{name} is not available inside kernels")
        if name in ("polar_decompose2d", "svd2d") and args[0].dtype.shape != (2, 2):
            raise self.err(node, f"ds.{name} takes a 2x2 matrix")
        try:
            return table[name]()
        except (ValueError, TypeError) as e:
            raise self.err(node, str(e)) from None

    def call_atomic(self, name, args, node):
        if len(args) != 3 or not isinstance(args[0], Arr):
            raise self.err(node, f"ds.{name}(array, index, value) takes an array, an index and a value")
        arr = args[0]
        idx = args[1].items if isinstance(args[1], Tup) else [args[1]]
        if arr.info.logical_ndim == 0 and isinstance(args[1], CT) and args[1].obj is None:
            idx = [B.const(0)]
        idx = [self.int_index(i, node.args[1]) for i in idx]
        self.store(arr, idx, args[2], node, {"atomic_add": "add", "atomic_min": "min", "atomic_max": "max"}[name])
        return CT(None)

    def call_matmul(self, args, node):
        """``ds.matmul(a, b, out)``: out += a @ b on whole 2-D arrays (BLAS), outside loops."""
        if len(args) != 3 or not all(isinstance(a, Arr) for a in args):
            raise self.err(node, "ds.matmul(a, b, out) takes three 2-D arrays: out += a @ b")
        if self.level not in ("top", "time") or not self.is_kernel:
            raise self.err(node, "ds.matmul works on whole arrays: call it in the kernel body, outside loops",
                           hint="it runs as one BLAS call; loop over rows yourself for per-element products")
        a, b, out = args
        for arr in args:
            if arr.info.logical_ndim != 2 or not isinstance(arr.info.elem, T.Scalar) or not arr.info.dtype.is_float:
                raise self.err(node, f"`{arr.name}` must be a 2-D float array for ds.matmul")
        if len({a.info.dtype, b.info.dtype, out.info.dtype}) != 1:
            raise self.err(node, "ds.matmul needs a, b and out of one dtype")
        self.emit(ir.MatMul(a.name, b.name, out.name, loc=self.cur_loc))
        return CT(None)

    # ------------------------------------------------------------- funcs
    def inline_call(self, fobj, args, node):
        from .lower import ACTIVE
        if any(getattr(getattr(fobj, "src", None), "parsed", None) is p for p in ACTIVE):
            raise self.err(node, f"`{fobj.__name__}` calls itself; recursion is not supported in kernels",
                           hint="write the recursion as a loop")
        types = []
        for a, an in zip(args, node.args):
            if isinstance(a, CT):
                types.append(a.obj)
            else:
                t = type_of(a)
                if t is None:
                    raise self.err(an, "this argument cannot be passed to a func")
                types.append(t)
        try:
            fn = fobj.specialize(tuple(types))
        except TypeError as e:
            raise self.err(node, str(e)) from None
        from ..passes.inline import inline_function
        self.ninline = getattr(self, "ninline", 0) + 1
        out = inline_function(self, fn, args, self.loc(node))
        return out


def _is_transform(obj):
    return getattr(obj, "_difsci_transform", False)
