"""Argument types: from annotations and from the values of a call.

``arg_type(value)`` gives the difsci type a value specialises on (Python
numbers are weak); ``check(kernel, param, annotation, value)`` validates a
launch argument against an annotation, naming the kernel and parameter.
"""
from __future__ import annotations

import numpy as np

from ..array import Array
from . import ir
from . import types as T


def array_info(elem, logical_ndim: int) -> ir.ArrayInfo:
    ne = len(getattr(elem, "shape", ()))
    storage = logical_ndim + ne if logical_ndim + ne > 0 else 1
    return ir.ArrayInfo(elem.scalar, storage, elem, logical_ndim)


def annotation_type(ann):
    """A parameter annotation as a difsci type (None if absent)."""
    if ann is None:
        return None
    if isinstance(ann, T.ArrayType):
        return ann
    if ann is float:
        return T.WEAK_FLOAT
    if ann is int:
        return T.WEAK_INT
    if ann is bool:
        return T.boolean
    if isinstance(ann, (T.Scalar, T.Vec, T.Mat)):
        return ann
    try:
        return T.as_scalar(ann)
    except TypeError:
        return None


def value_type(v, ann=None, who=""):
    """The type a launch/call argument specialises on; raises TypeError naming ``who``."""
    if isinstance(v, Array):
        t = array_info(v.elem, v.ndim)
    elif isinstance(v, np.ndarray):
        elem = None
        if isinstance(ann, T.ArrayType) and isinstance(ann.elem, (T.Vec, T.Mat)):
            elem = ann.elem
            es = elem.shape
            if tuple(v.shape[v.ndim - len(es):]) != es:
                raise ValueError(f"{who}: expected an array of {elem} (trailing axes {es}), got shape {v.shape}")
            t = array_info(elem, v.ndim - len(es))
        elif isinstance(ann, (T.Vec, T.Mat)):
            if v.shape != ann.shape:
                raise ValueError(f"{who}: expected a {ann} (shape {ann.shape}), got shape {v.shape}")
            return ann
        else:
            if v.dtype.kind == "u":
                raise TypeError(f"{who}: unsigned arrays are not supported; use int32/int64")
            t = array_info(T.from_numpy(v.dtype) if v.dtype.kind in "fib" else _bad_dtype(v, who), v.ndim)
    elif isinstance(v, (bool, np.bool_)):
        t = T.boolean
    elif isinstance(v, np.generic) and v.dtype.kind in "fi":
        t = T.from_numpy(v.dtype)       # numpy scalars keep their type (np.float64 is also a float)
    elif isinstance(v, int):
        t = T.WEAK_INT
    elif isinstance(v, float):
        t = T.WEAK_FLOAT
    else:
        raise TypeError(f"{who}: expected an array or a number, got {type(v).__name__}")
    if ann is not None:
        t = conform(t, ann, who)
    return t


def _bad_dtype(v, who):
    raise TypeError(f"{who}: arrays of {v.dtype} are not supported (use float32/float64/int32/int64)")


def conform(t, ann, who):
    """Check value type ``t`` against annotation ``ann``; the annotation's type wins for scalars."""
    if isinstance(ann, T.ArrayType):
        if not isinstance(t, ir.ArrayInfo):
            raise TypeError(f"{who}: expected an array {ann}, got {describe(t)}")
        if t.logical_ndim != ann.ndim:
            raise ValueError(f"{who}: expected a {ann.ndim}-d array ({ann}), got a {t.logical_ndim}-d array")
        if t.elem != ann.elem and not (isinstance(ann.elem, T.Scalar) and t.elem == ann.elem.strong()):
            raise TypeError(f"{who}: expected elements of type {ann.elem}, got {t.elem}")
        return t
    if isinstance(t, ir.ArrayInfo):
        raise TypeError(f"{who}: expected {describe(ann)}, got an array")
    if isinstance(ann, T.Scalar):
        if isinstance(t, (T.Vec, T.Mat)):
            raise TypeError(f"{who}: expected {describe(ann)}, got {describe(t)}")
        if ann.is_int and t.is_float:
            raise TypeError(f"{who}: expected an integer, got a float")
        if ann.is_bool and not t.is_bool:
            raise TypeError(f"{who}: expected a bool, got {describe(t)}")
        return ann
    if isinstance(ann, (T.Vec, T.Mat)):
        if t != ann:
            raise TypeError(f"{who}: expected {describe(ann)}, got {describe(t)}")
        return ann
    return t


def func_param_type(ann, t, who):
    """The type a func parameter annotated ``ann`` specialises on for an argument of type ``t``.

    Annotations of numbers, vectors and matrices win (the argument is converted);
    an array annotation needs an array: a func taking arrays is callable from
    kernels only.  Raises TypeError naming ``who``.
    """
    if ann is None or not isinstance(ann, (T.ArrayType, T.Scalar, T.Vec, T.Mat)):
        return t
    if isinstance(ann, T.ArrayType):
        if not isinstance(t, ir.ArrayInfo):
            raise TypeError(f"{who}: expected an array {ann}, got {describe(t)} "
                            "(a func taking arrays can be called from kernels only)")
        return conform(t, ann, who)
    if isinstance(t, ir.ArrayInfo):
        raise TypeError(f"{who}: expected {describe(ann)}, got an array")
    if isinstance(ann, T.Scalar) and isinstance(t, T.Scalar):
        return ann
    if isinstance(ann, (T.Vec, T.Mat)) and isinstance(t, (T.Vec, T.Mat)) and ann.shape == t.shape:
        return ann
    if isinstance(t, (T.Scalar, T.Vec, T.Mat)):
        raise TypeError(f"{who}: expected {describe(ann)}, got {describe(t)}")
    return t


def describe(t):
    """A type in a user's words: ``a float``, ``an int``, ``an f32``, ``a vec2 (...)``."""
    if isinstance(t, T.Scalar):
        if t.weak:
            return "a float" if t.is_float else "an int"
        return "a bool" if t.is_bool else f"an {t.name}"
    if isinstance(t, (T.Vec, T.Mat)):
        return f"a {t} (from Python: a numpy array of shape {t.shape})"
    if isinstance(t, ir.ArrayInfo):
        return f"an array of {t.elem}"
    return repr(t)


def components(v, t, who="") -> tuple:
    """A vector/matrix argument of type ``t`` as the scalars the generated code takes (row-major)."""
    a = np.asarray(v)
    if a.shape != t.shape:
        raise ValueError(f"{who or 'argument'}: expected {describe(t)}, got shape {a.shape}")
    return tuple(t.dtype.np(x) for x in a.ravel())


def to_runtime(v, t, who=""):
    """The value passed to generated code for a parameter of type ``t`` (a tuple of components for
    a vector or matrix); ``who`` names the parameter in errors."""
    if isinstance(t, (T.Vec, T.Mat)):
        return components(v, t, who)
    if isinstance(t, ir.ArrayInfo):
        d = v.data if isinstance(v, Array) else v
        return d.reshape(1) if d.ndim == 0 else d
    if isinstance(t, T.Scalar):
        # weak floats as np.float64 too: the plain-Python backend then keeps NumPy's
        # semantics (1.0 / 0.0 is inf, not ZeroDivisionError); numba sees the same type
        return t.np(v) if not t.weak or t.is_float else int(v)
    return v
