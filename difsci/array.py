"""``ds.Array``: a numpy buffer, an optional gradient buffer, an element type.

Arrays of vectors/matrices store their components in trailing axes: an array
of 64 ``vec2`` is a numpy array of shape ``(64, 2)`` whose logical shape is
``(64,)``.
"""
from __future__ import annotations

import sys

import numpy as np

from .lang import types as T

# zero_grad of a gradient at least this big (elements) that nothing else can see only marks it zero
LAZY_ZERO = 1 << 18


def _elem_of(dtype):
    if isinstance(dtype, (T.Vec, T.Mat)):
        return dtype
    return T.as_scalar(dtype)


class Array:
    """A difsci array (API.md §2).  ``data`` is the numpy storage."""

    __slots__ = ("data", "elem", "requires_grad", "_grad", "device", "_pending", "__weakref__")

    def __init__(self, data: np.ndarray, elem, requires_grad: bool = False, grad: "Array | None" = None,
                 device: str = "cpu"):
        self.data = data
        self.elem = elem
        self.device = device
        self._pending = False     # a gradient buffer zeroed lazily: logically zero, whatever it holds
        if requires_grad and not elem.scalar.is_float:
            raise TypeError(f"only floating arrays carry gradients; this array holds {elem.scalar}")
        self.requires_grad = bool(requires_grad)
        if requires_grad and grad is None:
            grad = Array(_zeros_like(data, device), elem, device=device)
        self._grad = grad

    # --- numpy-like surface -------------------------------------------------
    @property
    def grad(self) -> "Array | None":
        g = self._grad
        if g is not None and g._pending:
            g._materialize()
        return g

    def _materialize(self) -> None:
        """Write the zeros a lazy ``zero_grad`` left pending."""
        from .lang.backends.cpu_fill import fill
        fill(self.data, 0)
        self._pending = False

    @property
    def shape(self) -> tuple:
        ne = len(getattr(self.elem, "shape", ()))
        return self.data.shape[: self.data.ndim - ne]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self):
        return self.elem if isinstance(self.elem, (T.Vec, T.Mat)) else self.data.dtype

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def numpy(self) -> np.ndarray:
        """The data itself on the CPU (a view, no copy); from a GPU, a host copy."""
        if self.device != "cpu":
            from .lang.backends import devices
            return devices.to_host(self.data)
        return self.data

    def __array__(self, dtype=None, copy=None):
        d = self.numpy()
        return d if dtype is None else d.astype(dtype)

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        g = ", requires_grad=True" if self.requires_grad else ""
        dev = f", device={self.device!r}" if self.device != "cpu" else ""
        return f"ds.Array({self.numpy()!r}, dtype={self.dtype}{g}{dev})"

    def __getitem__(self, idx) -> "Array":
        """A view; its ``.grad`` is the matching view of this array's ``.grad``."""
        if not isinstance(idx, tuple):
            idx = (idx,)
        view = self.data[idx]
        ne = len(getattr(self.elem, "shape", ()))
        is_view = isinstance(view, np.ndarray) or (self.device != "cpu" and not isinstance(view, np.generic)
                                                    and hasattr(view, "copy_to_host"))
        if not is_view or view.ndim < ne:
            raise IndexError("indexing a ds.Array gives a view; use .numpy()[...] to read elements")
        g = Array(self.grad.data[idx], self.elem, device=self.device) if self._grad is not None else None
        return Array(view, self.elem, self.requires_grad, g, self.device)

    def fill(self, value) -> "Array":
        if self.device != "cpu":
            from .lang.backends import devices
            devices.fill(self.data, value)
            return self
        from .lang.backends.cpu_fill import fill
        fill(self.data, value)
        return self

    def zero_grad(self) -> None:
        """Zero ``.grad``.  A big CPU gradient that no one else holds (no other reference to its ``ds.Array``
        nor to its buffer, views included) is only marked zero: the next reader of ``.grad`` writes the
        zeros, and a ``ds.serial`` adjoint that can zero it as it goes takes it as it is (passes/fresh.py:
        the wave benchmark's 32 MiB ``h.grad`` is never written twice)."""
        if self._grad is None or self._grad._pending:
            return
        if self.device == "cpu" and _unshared_big(self):
            self._grad._pending = True
            return
        self._grad.fill(0)

    def to(self, device: str) -> "Array":
        if device == self.device:
            return self
        if device in ("cpu", "cuda"):
            if device == "cuda":
                from .config import check_cuda
                check_cuda()     # a BackendError saying why, where there is no CUDA backend
            from .lang.backends import devices
            return devices.move(self, device)
        raise ValueError(f"unknown device {device!r}: use 'cpu' or 'cuda'")

    def copy(self) -> "Array":
        if self.device != "cpu":
            from .lang.backends import devices
            g = Array(devices.copy(self.grad.data), self.elem, device=self.device) if self._grad is not None else None
            return Array(devices.copy(self.data), self.elem, self.requires_grad, g, self.device)
        g = Array(self.grad.data.copy(), self.elem) if self._grad is not None else None
        return Array(self.data.copy(), self.elem, self.requires_grad, g, self.device)


def _unshared_big(a: Array) -> bool:
    """Whether ``a.grad`` is a big buffer of its own that nothing but ``a`` refers to (no local of the
    caller may hold the gradient or its buffer: they would count)."""
    d = a._grad.data
    if type(d) is not np.ndarray or d.size < LAZY_ZERO or d.base is not None:
        return False
    del d
    return _refs(a) == _UNSHARED


def _refs(a: Array) -> tuple:
    """Reference counts of ``a``'s gradient ``ds.Array`` and of its buffer, as seen from here."""
    g = a._grad
    d = g.data
    return sys.getrefcount(g), sys.getrefcount(d)


# the counts when nothing but ``a`` holds them (measured, not assumed: interpreters count differently)
_UNSHARED = _refs(Array(np.zeros(1), T.f64, True, Array(np.zeros(1), T.f64)))


def array(a, dtype=None, requires_grad: bool = False, device: str | None = None) -> Array:
    """Wrap (a copy of) ``a``.  ``dtype=ds.vec2`` takes trailing axes of size 2.

    ``device`` is ``"cpu"`` or ``"cuda"``; by default the backend's (``cuda`` after
    ``ds.init(backend="cuda")``, else ``cpu``).
    """
    device = _device(device)
    if isinstance(a, Array):
        a = a.numpy()
    if dtype is None:
        src = np.asarray(a)
        if src.dtype.kind == "f":
            dt = src.dtype if src.dtype in (np.float32, np.float64) else np.float64
        elif src.dtype.kind in "iu":
            dt = src.dtype if src.dtype in (np.int32, np.int64) else np.int64
        elif src.dtype.kind == "b":
            dt = np.bool_
        else:
            raise TypeError(f"ds.array takes numbers, not {src.dtype}")
        elem = T.from_numpy(dt)
        data = np.array(src, dtype=dt)
    else:
        elem = _elem_of(dtype)
        data = np.array(a, dtype=elem.scalar.np)
        eshape = getattr(elem, "shape", ())
        if eshape and tuple(data.shape[data.ndim - len(eshape):]) != tuple(eshape):
            raise ValueError(f"an array of {elem} needs trailing axes {eshape}; got shape {data.shape}")
    # np.ascontiguousarray would turn a 0-d array into a 1-d one
    data = np.require(data, requirements="C")
    if device != "cpu":
        if requires_grad and not elem.scalar.is_float:   # the error before any device work
            raise TypeError(f"only floating arrays carry gradients; this array holds {elem.scalar}")
        from .lang.backends import devices
        data = devices.to_device(data)
    return Array(data, elem, requires_grad, device=device)


def zeros(shape, dtype=np.float64, requires_grad: bool = False, device: str | None = None) -> Array:
    """An array of zeros; ``shape=()`` gives a 0-d scalar array."""
    device = _device(device)
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    elem = _elem_of(dtype)
    full_shape = tuple(shape) + tuple(getattr(elem, "shape", ()))
    if device != "cpu":
        if requires_grad and not elem.scalar.is_float:
            raise TypeError(f"only floating arrays carry gradients; this array holds {elem.scalar}")
        from .lang.backends import devices
        return Array(devices.zeros(full_shape, elem.scalar.np), elem, requires_grad, device=device)
    data = np.zeros(full_shape, dtype=elem.scalar.np)
    return Array(data, elem, requires_grad)


def ones(shape, dtype=np.float64, requires_grad: bool = False, device: str | None = None) -> Array:
    return zeros(shape, dtype, requires_grad, device).fill(1)


def zeros_like(a: Array, requires_grad: bool | None = None) -> Array:
    rg = a.requires_grad if requires_grad is None else requires_grad
    return Array(_zeros_like(a.data, a.device), a.elem, rg, device=a.device)


def full(shape, value, dtype=np.float64, requires_grad: bool = False, device: str | None = None) -> Array:
    return zeros(shape, dtype, requires_grad, device).fill(value)


# --- devices (the cuda backend: difsci/lang/backends/devices.py) ---------------------------
def _device(device):
    """``device`` checked, or the backend's device when None."""
    from .lang.backends import devices
    return devices.default_device() if device is None else devices.check_device(device)


def _zeros_like(data, device):
    if device == "cpu":
        return np.zeros_like(data)
    from .lang.backends import devices
    return devices.zeros_like(data)
