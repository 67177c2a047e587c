"""Device storage for ``ds.Array``: where an array's buffer lives and how it moves.

A ``ds.Array`` on ``device="cuda"`` keeps a numba device array
(``DeviceNDArray``, or the simulator's ``FakeCUDAArray`` under
``NUMBA_ENABLE_CUDASIM=1``) in ``.data``, with the same shape as the host
buffer would have (vector/matrix components in trailing axes).  Its ``.grad``
lives on the same device.  Only the documented numba.cuda array API is used
(``to_device``, ``device_array``, ``copy_to_host``, ``copy_to_device``,
``reshape``, slicing), so this works with numba's built-in CUDA target and
with the ``numba-cuda`` package alike.

Nothing here copies between host and device behind the user's back: copies
happen in ``move`` (``Array.to``), ``to_host`` (``.numpy()``) and the seed of
``Tape.backward`` (a host value added on the device).
"""
from __future__ import annotations

import numpy as np

DEVICES = ("cpu", "cuda")


def _cuda():
    from ...config import check_cuda
    check_cuda()
    from numba import cuda
    return cuda


def is_device_array(d) -> bool:
    """True for a numba CUDA array (real or simulated), False for numpy arrays."""
    if isinstance(d, np.ndarray):
        return False
    return hasattr(d, "__cuda_array_interface__") or hasattr(d, "copy_to_host")


def default_device() -> str:
    """The device new arrays go to when none is named: the backend's."""
    from ...config import config
    return "cuda" if config.backend == "cuda" else "cpu"


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: use 'cpu' or 'cuda'")
    return device


# ------------------------------------------------------------------ buffers
def to_device(host: np.ndarray):
    cuda = _cuda()
    return cuda.to_device(np.require(host, requirements="C"))


def to_host(d) -> np.ndarray:
    """A host copy of a device buffer (a numpy array of the same shape)."""
    if isinstance(d, np.ndarray):
        return d
    return d.copy_to_host()


def empty(shape, dtype):
    return _cuda().device_array(tuple(shape), dtype=np.dtype(dtype))


def zeros(shape, dtype):
    d = empty(shape, dtype)
    fill(d, 0)
    return d


def zeros_like(d):
    """Zeros shaped like ``d``, on ``d``'s device (numpy for numpy)."""
    if isinstance(d, np.ndarray):
        return np.zeros_like(d)
    return zeros(d.shape, d.dtype)


_FILL = {}


def _fill_kernel():
    k = _FILL.get("k")
    if k is None:
        cuda = _cuda()

        @cuda.jit
        def fill1d(a, v):
            i = cuda.grid(1)
            if i < a.shape[0]:
                a[i] = v
        k = _FILL["k"] = fill1d
    return k


def fill(d, value) -> None:
    """Set every element of a device buffer (a kernel over the flat buffer; no host copy)."""
    if isinstance(d, np.ndarray):
        d[...] = value
        return
    n = int(np.prod(d.shape))
    if n == 0:
        return
    v = np.dtype(d.dtype).type(value)
    flat = d.reshape(n) if _contiguous(d) else None
    if flat is None or _sim():
        d[...] = v            # numba's own strided assignment (a kernel too); numpy in the simulator
        return
    from .rt_cuda import BLOCK
    _fill_kernel()[(n + BLOCK - 1) // BLOCK, BLOCK](flat, v)


def add_scalar_or_array(d, value) -> None:
    """``d += value`` on the device (used to seed ``Tape.backward``); ``value`` a number or host array."""
    if isinstance(d, np.ndarray):
        d[...] += value
        return
    h = d.copy_to_host()
    h += value
    copy_into(d, h)


def copy_into(d, host: np.ndarray) -> None:
    """Write a host array into a device buffer of the same shape."""
    if isinstance(d, np.ndarray):
        d[...] = host
        return
    host = np.ascontiguousarray(np.broadcast_to(np.asarray(host, dtype=d.dtype), d.shape))
    if _contiguous(d):
        d.copy_to_device(host)
    else:
        d[...] = host


def copy(d):
    """A new device buffer holding the same values."""
    if isinstance(d, np.ndarray):
        return d.copy()
    out = empty(d.shape, d.dtype)
    if _contiguous(d):
        out.copy_to_device(d)
    else:
        out.copy_to_device(d.copy_to_host())
    return out


def _sim() -> bool:
    """numba's simulator: elementwise work is numpy there (a kernel costs ~150 us per thread)."""
    from numba import config
    return bool(config.ENABLE_CUDASIM)


def _contiguous(d) -> bool:
    f = getattr(d, "is_c_contiguous", None)
    return bool(f()) if callable(f) else True


# ------------------------------------------------------------------- arrays
def move(arr, device: str):
    """``arr.to(device)``: a new ``ds.Array`` holding a copy of the data (and of ``.grad``)."""
    from ...array import Array
    check_device(device)
    if device == arr.device:
        return arr
    if device == "cuda":
        conv = to_device
    else:
        conv = to_host
    data = conv(arr.data)
    grad = None
    if arr.grad is not None:
        grad = Array(conv(arr.grad.data), arr.elem, device=device)
    return Array(data, arr.elem, arr.requires_grad, grad, device)
