"""Names the generated source uses, for the plain-Python backend.

``math`` here is not Python's module: the generated code is numba code, and
numba's ``math.sqrt(-1.0)`` is nan and ``math.exp(1000.0)`` inf (NumPy
semantics), where Python's raises.  The stand-in below computes in float64
with NumPy and returns NumPy scalars, so the oracle gives what numba gives
(and its results keep NumPy's semantics in the arithmetic that follows).
"""
import math as _pymath
import types as _types

import numpy as np  # noqa: F401

from .random import randn_py as randn, randu_py as randu  # noqa: F401

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
