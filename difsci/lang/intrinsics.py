"""The names kernels may call: ``ds.sin``, ``ds.dot``, ``ds.atomic_add`` ….

Each is an :class:`Intrinsic`: the compiler recognises it by identity, and
calling it from plain Python evaluates it with NumPy (handy in tests).
Python's ``math`` functions and the builtins ``abs``/``min``/``max`` map to
the same intrinsics.
"""
from __future__ import annotations

import builtins
import math

import numpy as np


class Intrinsic:
    def __init__(self, name: str, pyfn=None):
        self.name = name
        self._pyfn = pyfn

    def __call__(self, *args, **kw):
        if self._pyfn is None:
            raise TypeError(f"ds.{self.name} can only be called inside a kernel or func")
        return self._pyfn(*args, **kw)

    def __repr__(self):
        return f"<difsci intrinsic {self.name}>"


def _np1(f):
    return lambda *a: f(*a)


MATH_NAMES = ["sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "exp",
              "exp2", "expm1", "log", "log1p", "log2", "log10", "sqrt", "cbrt", "hypot", "erf", "erfc",
              "floor", "ceil"]
_NP_EQUIV = {"asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "atan2": np.arctan2,
             "erf": np.vectorize(math.erf), "erfc": np.vectorize(math.erfc)}

INTRINSICS: dict[str, Intrinsic] = {}
for _n in MATH_NAMES:
    INTRINSICS[_n] = Intrinsic(_n, _NP_EQUIV.get(_n) or getattr(np, _n))


def _clamp(x, lo, hi):
    return np.minimum(np.maximum(x, lo), hi)


def _python_only(name):
    return None


for _n, _f in {
    "abs": np.abs, "sign": np.sign, "min": np.minimum, "max": np.maximum, "pow": np.power,
    "clamp": _clamp, "select": lambda c, a, b: np.where(c, a, b),
    "dot": lambda a, b: float(np.dot(a, b)), "cross": np.cross,
    "norm": lambda a: float(np.linalg.norm(a)), "normalize": lambda a: np.asarray(a) / np.linalg.norm(a),
    "outer": np.outer, "transpose": np.transpose, "trace": np.trace, "det": np.linalg.det,
    "inverse": np.linalg.inv, "identity": lambda n: np.eye(n), "zeros_like": np.zeros_like,
    "atomic_add": None, "atomic_min": None, "atomic_max": None,
    "matmul": lambda a, b, out: np.add(out, np.asarray(a) @ np.asarray(b), out=out),
    "randu": None, "randn": None, "polar_decompose2d": None, "svd2d": None,
}.items():
    INTRINSICS[_n] = Intrinsic(_n, _f)

# Python's math module and builtins, mapped to the same intrinsics.
ALIASES: dict[int, str] = {}
for _n in MATH_NAMES:
    if hasattr(math, _n):
        ALIASES[id(getattr(math, _n))] = _n
ALIASES[id(math.fabs)] = "abs"
ALIASES[id(math.pow)] = "pow"
ALIASES[id(builtins.abs)] = "abs"
ALIASES[id(builtins.min)] = "min"
ALIASES[id(builtins.max)] = "max"
MATH_CONSTANTS = {"pi": math.pi, "e": math.e, "inf": math.inf, "tau": math.tau}


def intrinsic_name(obj) -> str | None:
    """The intrinsic an object stands for, or None."""
    if isinstance(obj, Intrinsic):
        return obj.name
    return ALIASES.get(id(obj))


class _Marker:
    """``ds.ndrange``, ``ds.static``, ``ds.serial``: loop-form markers."""

    def __init__(self, name, pyfn):
        self.name = name
        self._pyfn = pyfn

    def __call__(self, *a):
        return self._pyfn(*a)

    def __repr__(self):
        return f"<difsci loop form {self.name}>"


def _ndrange_py(*ranges):
    import itertools
    rs = [range(r) if isinstance(r, int) else range(*r) for r in ranges]
    return itertools.product(*rs)


ndrange = _Marker("ndrange", _ndrange_py)
static = _Marker("static", lambda x: x)
serial = _Marker("serial", lambda x: x)
