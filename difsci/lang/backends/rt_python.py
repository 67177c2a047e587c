"""Names the generated source uses, for the plain-Python backend.

``math`` here is not Python's module: the generated code is numba code, and
numba's ``math.sqrt(-1.0)`` is nan and ``math.exp(1000.0)`` inf (NumPy
semantics), where Python's raises.  The stand-in below calls Python's math
(the same libm numba calls) and falls back to NumPy where that raises; it
returns NumPy scalars, as do ``min``/``max``/``abs`` here, so that the
arithmetic that follows keeps NumPy's semantics too (``x / 0.0`` is inf).
"""
import builtins as _builtins
import math as _pymath
import types as _types

import numpy as np  # noqa: F401

from .random import randn_py as randn, randu_py as randu  # noqa: F401
from .reassoc import radd_py as radd  # noqa: F401

from .atomics import py_atomic_add as atomic_add, py_atomic_max as atomic_max, py_atomic_min as atomic_min  # noqa: F401

prange = range


def _numpy_semantics(name, ufunc):
    """Python's ``math.<name>`` (libm, like numba), with NumPy's nan/inf where Python raises."""
    fn = getattr(_pymath, name)

    def call(*args):
        try:
            return np.float64(fn(*args))
        except (ValueError, OverflowError):
            with np.errstate(all="ignore"):
                return ufunc(*[np.float64(a) for a in args])
    call.__name__ = name
    return call


_UFUNCS = {"sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
           "atan2": np.arctan2, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "exp": np.exp,
           "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "log2": np.log2, "log10": np.log10,
           "sqrt": np.sqrt, "hypot": np.hypot, "erf": np.vectorize(_pymath.erf), "erfc": np.vectorize(_pymath.erfc)}

math = _types.SimpleNamespace(pi=_pymath.pi, e=_pymath.e, inf=_pymath.inf, tau=_pymath.tau, nan=_pymath.nan,
                              **{n: _numpy_semantics(n, u) for n, u in _UFUNCS.items()})


def _numpy_scalar(v):
    return np.float64(v) if type(v) is float else v


def min(a, b):  # noqa: A001 - the generated code's min: numba's (the first unless b < a)
    return _numpy_scalar(b if b < a else a)


def max(a, b):  # noqa: A001
    return _numpy_scalar(b if b > a else a)


def abs(x):  # noqa: A001
    return _numpy_scalar(_builtins.abs(x))
