"""Names the generated source uses, for the numba CPU backend."""
import math  # noqa: F401

import numpy as np  # noqa: F401
from numba import get_num_threads, prange  # noqa: F401
from numba import njit as _numba_njit

from .atomics import atomic_add, atomic_max, atomic_min  # noqa: F401
from .random import make_numba
from .reassoc import radd  # noqa: F401  (parfor._chunked's reassociable sums)

randu, randn = make_numba()


def njit(*args, **kw):
    """numba's ``njit``; a function whose code calls ``np.dot`` (ds.matmul) first makes SciPy's BLAS
    single-threaded (:func:`_one_blas_thread`).  Kernels without it never import SciPy."""
    if args and callable(args[0]) and not kw and len(args) == 1:
        _check_blas(args[0])
        return _numba_njit(args[0])
    deco = _numba_njit(*args, **kw)

    def wrap(fn):
        _check_blas(fn)
        return deco(fn)
    return wrap


def _names(code) -> set:
    names = set(code.co_names)
    for c in code.co_consts:
        if hasattr(c, "co_names"):
            names |= _names(c)
    return names


def _check_blas(fn) -> None:
    code = getattr(fn, "__code__", None)
    if code is not None and "dot" in _names(code):
        _one_blas_thread()


_blas_done = False


def _one_blas_thread() -> None:
    """ds.matmul runs numba's np.dot, i.e. SciPy's OpenBLAS.  Its threads fight numba's
    (spinning) worker threads for the cores — a 0.1 ms product took 20 ms right after a
    parallel loop here — so kernels use it single-threaded.  NumPy's own BLAS is left alone.
    Done once, when the first function that calls np.dot is defined (importing
    scipy.linalg costs ~0.15 s, so not at import)."""
    global _blas_done
    if _blas_done:
        return
    _blas_done = True
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (load the library numba calls)
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return
    for lib in ThreadpoolController().lib_controllers:
        if "scipy.libs" in lib.filepath or "scipy/" in lib.filepath.replace("\\", "/"):
            lib.set_num_threads(1)
