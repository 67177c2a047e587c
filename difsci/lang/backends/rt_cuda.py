"""Names the generated source uses, for the CUDA backend (numba.cuda).

The generated module holds ``@cuda.jit`` kernels (one per top-level parallel
loop) and a plain-Python host function that launches them.  Two kinds of
names are exported here:

* for kernels (device code): ``cuda``, ``math``, ``np``, the device helpers
  ``_cu_min``/``_cu_max``/``_cu_fsign``/``_cu_isign``/``_cu_floor_f64``/...,
  and ``_cu_randu``/``_cu_randn``;
* for the host function: ``_cu_hmath`` (Python's math with NumPy's nan/inf
  semantics, as on the ``python`` backend), ``randu``/``randn`` (Python
  versions), ``_cu_in``/``_cu_back`` (numpy arguments to and from the
  device), the reduction helpers and the stack-overflow check.

Under numba's simulator (``NUMBA_ENABLE_CUDASIM=1``) kernels run as Python,
so the device helpers are written with NumPy there (libdevice functions are
stubs in the simulator) and ``math`` is the NumPy-semantics stand-in of the
``python`` backend (``math.sqrt(-1.0)`` is nan, as on a GPU, not an error).
The emitted source is the same either way; only these bindings differ.
Works with numba's built-in CUDA target and with the ``numba-cuda`` package
(both expose the same ``numba.cuda`` API used here).
"""
from __future__ import annotations

import warnings as _warnings

import numpy as np
from numba import config as _nconfig
from numba import cuda

from ...errors import BackendError
from . import rt_python as _rtp
from .random import randn_py as randn, randu_py as randu

SIM = bool(_nconfig.ENABLE_CUDASIM)

# small loops (a loss over a few elements, deterministic one-thread launches) are launched as
# they are: numba-cuda's "Grid size N will likely result in GPU under-utilization" is noise here
_warnings.filterwarnings("ignore", message=r"Grid size \d+ will likely result in GPU under-utilization",
                         category=Warning)   # numba-cuda may raise its own copy of NumbaPerformanceWarning

BLOCK = 256                       # threads per block of every launch

_cu_hmath = _rtp.math             # host-side math: NumPy semantics (nan instead of ValueError)

__all__ = [
    "cuda", "np", "math", "randu", "randn", "SIM", "BLOCK",
    "_cu_hmath", "_cu_min", "_cu_max", "_cu_fsign", "_cu_isign",
    "_cu_floor_f64", "_cu_floor_f32", "_cu_ceil_f64", "_cu_ceil_f32",
    "_cu_cbrt_f64", "_cu_cbrt_f32", "_cu_exp2_f64", "_cu_exp2_f32",
    "_cu_randu", "_cu_randn", "_cu_warp_sum", "_cu_lane0", "_cu_hmin", "_cu_hmax", "_cu_habs",
    "_cu_in", "_cu_back", "_cu_red", "_cu_get", "_cu_flag", "_cu_stack_check", "_cu_blocks",
]


# ------------------------------------------------------------ device helpers
# numba's builtin min/max are a *args overload that the CUDA target cannot compile
# as a device function (measured: "Signature mismatch" from cuda.compile_ptx); these
# reproduce numba's CPU semantics exactly: min(a, b) = b if b < a else a.
@cuda.jit(device=True)
def _cu_min(a, b):
    return b if b < a else a


@cuda.jit(device=True)
def _cu_max(a, b):
    return b if b > a else a


@cuda.jit(device=True)
def _cu_fsign(x):
    # np.sign: 1, -1, 0 (signed), nan for nan
    return 1.0 if x > 0 else (-1.0 if x < 0 else x * 0.0)


@cuda.jit(device=True)
def _cu_isign(x):
    return 1 if x > 0 else (-1 if x < 0 else 0)


if SIM:
    math = _rtp.math

    def _np1(f):
        return cuda.jit(device=True)(lambda x: f(x))

    _cu_floor_f64 = _cu_floor_f32 = _np1(np.floor)
    _cu_ceil_f64 = _cu_ceil_f32 = _np1(np.ceil)
    _cu_cbrt_f64 = _cu_cbrt_f32 = _np1(np.cbrt)
    _cu_exp2_f64 = _cu_exp2_f32 = _np1(np.exp2)
    _cu_randu = cuda.jit(device=True)(randu)
    _cu_randn = cuda.jit(device=True)(randn)
    # no warp shuffles in the simulator: every thread commits its own partial
    _cu_warp_sum = cuda.jit(device=True)(lambda v: v)
    _cu_lane0 = cuda.jit(device=True)(lambda: True)
else:
    import math  # noqa: F811  (the real module: numba.cuda lowers math.* to libdevice)

    from numba.cuda import libdevice as _ld

    uint64 = np.uint64

    _cu_floor_f64, _cu_floor_f32 = _ld.floor, _ld.floorf
    _cu_ceil_f64, _cu_ceil_f32 = _ld.ceil, _ld.ceilf
    _cu_cbrt_f64, _cu_cbrt_f32 = _ld.cbrt, _ld.cbrtf
    _cu_exp2_f64, _cu_exp2_f32 = _ld.exp2, _ld.exp2f

    # the splitmix64 recipe of random.py, bit for bit
    @cuda.jit(device=True)
    def _cu_mix(z):
        z = z + uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> uint64(27))) * uint64(0x94D049BB133111EB)
        return z ^ (z >> uint64(31))

    @cuda.jit(device=True)
    def _cu_randu(k0, k1, k2, k3):
        h = uint64(0)
        h = _cu_mix(h ^ uint64(np.int64(k0)))
        h = _cu_mix(h ^ uint64(np.int64(k1)))
        h = _cu_mix(h ^ uint64(np.int64(k2)))
        h = _cu_mix(h ^ uint64(np.int64(k3)))
        return np.float64(h >> uint64(11)) * (1.0 / 9007199254740992.0)

    @cuda.jit(device=True)
    def _cu_randn(k0, k1, k2, k3):
        u1 = _cu_randu(k0, k1, k2, np.int64(k3) ^ np.int64(0x5BD1E995))
        u2 = _cu_randu(k0, k1, k2, np.int64(k3) ^ np.int64(0x1B873593))
        return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)


    @cuda.jit(device=True)
    def _cu_warp_sum(v):
        """The sum of ``v`` over the 32 lanes of the warp, in lane 0 (every lane must call it)."""
        v += cuda.shfl_down_sync(0xFFFFFFFF, v, 16)
        v += cuda.shfl_down_sync(0xFFFFFFFF, v, 8)
        v += cuda.shfl_down_sync(0xFFFFFFFF, v, 4)
        v += cuda.shfl_down_sync(0xFFFFFFFF, v, 2)
        v += cuda.shfl_down_sync(0xFFFFFFFF, v, 1)
        return v

    @cuda.jit(device=True)
    def _cu_lane0():
        return cuda.laneid == 0


# -------------------------------------------------------------- host helpers
_cu_hmin = getattr(_rtp, "min", min)     # host code's min/max/abs: the python backend's, if it has its own
_cu_hmax = getattr(_rtp, "max", max)
_cu_habs = getattr(_rtp, "abs", abs)


def _cu_blocks(n: int) -> int:
    return (n + BLOCK - 1) // BLOCK


def _cu_in(a):
    """A kernel's array argument on the device: device arrays as they are, numpy arrays copied
    (the documented cost of passing plain numpy arrays to a cuda-backend kernel)."""
    if not isinstance(a, np.ndarray):      # a numba device array (real or simulated)
        return a
    return cuda.to_device(np.ascontiguousarray(a))


def _cu_back(orig, dev) -> None:
    """Copy a written array back into the numpy array the caller passed."""
    if isinstance(orig, np.ndarray) and orig is not dev:
        orig[...] = dev.copy_to_host().reshape(orig.shape)


def _cu_red(value, dtype):
    """A one-element device array for a scalar reduction, starting at ``value``."""
    return cuda.to_device(np.array([value], dtype=dtype))


def _cu_get(d):
    return d.copy_to_host()[0]


def _cu_flag():
    """Per-call overflow flag of the per-thread value stacks: the deepest push seen past the end."""
    return cuda.to_device(np.zeros(1, dtype=np.int64))


def _cu_stack_check(flag, kernel: str, size: int) -> None:
    need = int(flag.copy_to_host()[0])
    if need:
        raise BackendError(
            f"kernel `{kernel}` on the cuda backend: a per-thread value stack of the adjoint overflowed "
            f"({size} entries, at least {need} needed), so the gradients it wrote are wrong and must be "
            f"discarded. Set the environment variable DIFSCI_CUDA_STACK={_pow2(need)} (or more) before "
            f"the kernel is compiled, zero the gradients and run backward again.")


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()

