"""difsci: a differentiable-programming language for scientific computing.

See API.md for the contract; ``import difsci as ds``.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .array import Array, array, full, ones, zeros  # noqa: E402
from .array import zeros_like as _array_zeros_like  # noqa: E402
from .config import init  # noqa: E402
from .errors import AutodiffError, BackendError, CompileError, DifsciError  # noqa: E402
from .lang import types as _T  # noqa: E402
from .lang.intrinsics import INTRINSICS as _INTR  # noqa: E402
from .lang.intrinsics import ndrange, serial, static  # noqa: E402
from .lang.kernel import Func, Kernel, func, kernel  # noqa: E402
from .lang.transforms import grad, hessian, jvp  # noqa: E402
from .tape import Tape  # noqa: E402
from .rollout import Rollout  # noqa: E402

f32, f64, i32, i64 = _T.f32, _T.f64, _T.i32, _T.i64
vec, mat = _T.vec, _T.mat
vec2, vec3, vec4 = (_T.Vec(n, _T.f64) for n in (2, 3, 4))
mat2, mat3, mat4 = (_T.Mat(n, n, _T.f64) for n in (2, 3, 4))
vec2f, vec3f, vec4f = (_T.Vec(n, _T.f32) for n in (2, 3, 4))
mat2f, mat3f, mat4f = (_T.Mat(n, n, _T.f32) for n in (2, 3, 4))

globals().update(_INTR)


def _zeros_like_py(a, requires_grad=None):
    """``ds.zeros_like``: an Array like a ds.Array; a numpy zeros for vectors (kernels: a zero vector)."""
    if isinstance(a, Array):
        return _array_zeros_like(a, requires_grad)
    import numpy as _np
    return _np.zeros_like(a)


_INTR["zeros_like"]._pyfn = _zeros_like_py
zeros_like = _INTR["zeros_like"]

__all__ = ["nn", "distributed",
    "Array", "array", "zeros", "ones", "full", "zeros_like", "init", "kernel", "func", "Kernel", "Func",
    "Tape", "Rollout", "grad", "jvp", "hessian", "ndrange", "static", "serial",
    "DifsciError", "CompileError", "AutodiffError", "BackendError",
    "f32", "f64", "i32", "i64", "vec", "mat", "vec2", "vec3", "vec4", "mat2", "mat3", "mat4",
    "vec2f", "vec3f", "vec4f", "mat2f", "mat3f", "mat4f",
] + sorted(_INTR)


def __getattr__(name):
    # ds.nn / ds.distributed are imported on first use (keep `import difsci` light)
    if name in ("nn", "distributed"):
        import importlib
        mod = importlib.import_module("." + name, __name__)
        globals()[name] = mod
        return mod
    raise AttributeError(f"module 'difsci' has no attribute {name!r}")
