"""Names the generated source uses, for the numba CPU backend."""
import math  # noqa: F401

import numpy as np  # noqa: F401
from numba import get_num_threads, njit, prange  # noqa: F401

from .atomics import atomic_add, atomic_max, atomic_min  # noqa: F401
from .random import make_numba

randu, randn = make_numba()


def _one_blas_thread() -> None:
    """ds.matmul runs numba's np.dot, i.e. SciPy's OpenBLAS.  Its threads fight numba's
    (spinning) worker threads for the cores — a 0.1 ms product took 20 ms right after a
    parallel loop here — so kernels use it single-threaded.  NumPy's own BLAS is left alone."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (load the library numba calls)
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return
    for lib in ThreadpoolController().lib_controllers:
        if "scipy.libs" in lib.filepath or "scipy/" in lib.filepath.replace("\\", "/"):
            lib.set_num_threads(1)


_one_blas_thread()
