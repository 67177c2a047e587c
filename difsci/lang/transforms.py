"""``ds.grad``, ``ds.jvp``, ``ds.hessian``: funcs built by transforming the IR
of other funcs, so they compose to any order (each output is again IR)."""
from __future__ import annotations

from . import build as B
from . import ir
from . import types as T
from .autodiff.custom import wrap_call
from .autodiff.forward import jvp_func
from .autodiff.reverse import reverse_func
from .kernel import FuncBase


def _argnums(argnums):
    return list(argnums) if isinstance(argnums, (tuple, list)) else [argnums]


class _Transformed(FuncBase):
    def __init__(self, f, label):
        if not getattr(f, "_difsci_func", False):
            raise TypeError(f"ds.{label} takes a @ds.func (or a transformed func), got {f!r}")
        self.f = f
        self.__name__ = f"{label}({getattr(f, '__name__', 'f')})"
        self._specs = {}

    def annotated_types(self):
        return self.f.annotated_types()

    def _last_fn(self):
        if "_last" not in self.__dict__:
            types = self.annotated_types()
            if types is not None:
                self.specialize(types)
        return super()._last_fn()

    def specialize(self, types):
        key = tuple(types)
        fn = self._specs.get(key)
        if fn is None:
            fn = self._specs[key] = self.build(key)
        self._last = fn
        return fn


class Grad(_Transformed):
    def __init__(self, f, argnums=0):
        super().__init__(f, "grad")
        self.argnums = _argnums(argnums)

    def build(self, types):
        F = wrap_call(self.f.specialize(types))
        return reverse_func(F, self.argnums)


class Jvp(_Transformed):
    def __init__(self, f):
        super().__init__(f, "jvp")

    def build(self, types):
        n = len(types) // 2
        F = wrap_call(self.f.specialize(types[:n]))
        return jvp_func(F)

    def annotated_types(self):
        t = self.f.annotated_types()
        return None if t is None else tuple(t) + tuple(t)


class Hessian(_Transformed):
    """Forward over reverse: column k is the tangent of grad(f) along e_k."""

    def __init__(self, f, argnums=0):
        super().__init__(f, "hessian")
        self.argnum = argnums if isinstance(argnums, int) else argnums[0]

    def build(self, types):
        F = wrap_call(self.f.specialize(types))
        G = reverse_func(F, [self.argnum])
        J = jvp_func(G)
        return _hessian_from(F, G, J, self.argnum)


def _hessian_from(F, G, J, argnum):
    from .passes.inline import FunctionBuilder
    fb = FunctionBuilder(F, "hessian")
    pname, pty, names = F.groups[argnum]
    n = len(names)
    cols = []
    for k in range(n):
        args = [fb.param_value(g) for g in F.groups]
        tangents = []
        for gi, (gn, gt, gnames) in enumerate(F.groups):
            if isinstance(gt, ir.ArrayInfo):
                continue
            if gi == argnum:
                vals = [B.Const(T.f64, 1.0 if j == k else 0.0) for j in range(n)]
            else:
                vals = [B.Const(T.f64, 0.0) for _ in gnames]
            tangents.append(fb.pack(gt, vals))
        out = fb.inline(J, args + tangents)
        tan = out.items[1]
        cols.append(fb.flat(tan))
    if isinstance(pty, T.Scalar):
        results = [cols[0][0]]
        rt = T.f64 if not pty.is_float else pty
    else:
        st = pty.dtype
        results = [cols[c][r] for r in range(n) for c in range(n)]
        rt = T.Mat(n, n, st)
    return fb.finish(results, rt, f"hessian of `{F.name}`")


def _memo(kind, f, arg, make):
    """The same transformation of the same func is one object (compiled once)."""
    cache = f.__dict__.setdefault("_transforms", {})
    key = (kind, tuple(arg) if isinstance(arg, list) else arg)
    if key not in cache:
        cache[key] = make()
    return cache[key]


def grad(f, argnums=0):
    """A func computing d f / d (argument ``argnums``) of a scalar-valued func."""
    return _memo("grad", f, argnums, lambda: Grad(f, argnums))


def jvp(f):
    """A func ``(primals..., tangents...) -> (value, tangent)``."""
    return _memo("jvp", f, None, lambda: Jvp(f))


def hessian(f, argnums=0):
    """A func giving the Hessian (a matrix for a vector argument)."""
    return _memo("hessian", f, argnums, lambda: Hessian(f, argnums))


for _t in (grad, jvp, hessian):
    _t._difsci_transform = True
