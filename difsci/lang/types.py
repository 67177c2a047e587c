"""difsci's types: scalars, small vectors/matrices, arrays.

The public objects ``ds.f32``, ``ds.vec3``, ``ds.f64[:, :]`` … are the same
objects the compiler works with.  Scalars carry a *weak* flag (NEP 50): Python
literals and ``float``/``int`` arguments take the type of the other operand.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class DType:
    """Base of every difsci value type."""

    def __getitem__(self, dims) -> "ArrayType":
        """``ds.f64[:, :]`` is a 2-D array of f64; ``ds.f64[()]`` a 0-d array."""
        if dims == ():
            return ArrayType(self, 0)
        if not isinstance(dims, tuple):
            dims = (dims,)
        for d in dims:
            if not (isinstance(d, slice) and d == slice(None)):
                raise TypeError(f"array annotations are written {self}[:, :]; got {dims!r}")
        return ArrayType(self, len(dims))


@dataclass(frozen=True, eq=True)
class Scalar(DType):
    name: str          # 'f32', 'f64', 'i32', 'i64', 'bool'
    weak: bool = False

    @property
    def is_float(self) -> bool:
        return self.name[0] == "f"

    @property
    def is_int(self) -> bool:
        return self.name[0] == "i"

    @property
    def is_bool(self) -> bool:
        return self.name == "bool"

    @property
    def np(self):
        return _NP[self.name]

    def strong(self) -> "Scalar":
        return SCALARS[self.name] if self.weak else self

    @property
    def ncomp(self) -> int:
        return 1

    @property
    def scalar(self) -> "Scalar":
        return self

    def __call__(self, v):
        """Cast from Python: ``ds.f32(1.5)``."""
        return self.np(v)

    def __repr__(self):
        return ("weak " if self.weak else "") + self.name

    __str__ = __repr__


@dataclass(frozen=True, eq=True)
class Vec(DType):
    n: int
    dtype: Scalar

    @property
    def ncomp(self) -> int:
        return self.n

    @property
    def scalar(self) -> Scalar:
        return self.dtype

    @property
    def shape(self):
        return (self.n,)

    def __call__(self, *vals):
        """From Python: ``ds.vec2(1, 2)`` -> numpy array of shape (2,)."""
        if len(vals) == 1 and np.ndim(vals[0]) == 1:
            vals = tuple(vals[0])
        if len(vals) != self.n:
            raise ValueError(f"{self} takes {self.n} components, got {len(vals)}")
        return np.array(vals, dtype=self.dtype.np)

    def __repr__(self):
        return f"vec{self.n}" + ("f" if self.dtype.name == "f32" else "") if self.dtype.name in ("f32", "f64") \
            else f"vec({self.n}, {self.dtype})"

    __str__ = __repr__


@dataclass(frozen=True, eq=True)
class Mat(DType):
    n: int
    m: int
    dtype: Scalar

    @property
    def ncomp(self) -> int:
        return self.n * self.m

    @property
    def scalar(self) -> Scalar:
        return self.dtype

    @property
    def shape(self):
        return (self.n, self.m)

    def __call__(self, *vals):
        """From Python: ``ds.mat2(a, b, c, d)`` (row-major) -> numpy (2, 2)."""
        if len(vals) == 1:
            return np.asarray(vals[0], dtype=self.dtype.np).reshape(self.n, self.m)
        if len(vals) != self.n * self.m:
            raise ValueError(f"{self} takes {self.n * self.m} entries, got {len(vals)}")
        return np.array(vals, dtype=self.dtype.np).reshape(self.n, self.m)

    def __repr__(self):
        if self.n == self.m and self.dtype.name in ("f32", "f64"):
            return f"mat{self.n}" + ("f" if self.dtype.name == "f32" else "")
        return f"mat({self.n}, {self.m}, {self.dtype})"

    __str__ = __repr__


@dataclass(frozen=True, eq=True)
class ArrayType:
    elem: DType
    ndim: int

    def __repr__(self):
        return f"{self.elem}[{', '.join([':'] * self.ndim) or '()'}]"


@dataclass(frozen=True, eq=True)
class TupleType:
    items: tuple

    def __repr__(self):
        return "(" + ", ".join(map(str, self.items)) + ")"


_NP = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}
SCALARS = {k: Scalar(k) for k in _NP}
f32, f64, i32, i64, boolean = (SCALARS[k] for k in ("f32", "f64", "i32", "i64", "bool"))
WEAK_FLOAT = Scalar("f64", weak=True)
WEAK_INT = Scalar("i64", weak=True)


def from_numpy(dt) -> Scalar:
    dt = np.dtype(dt)
    for k, v in _NP.items():
        if np.dtype(v) == dt:
            return SCALARS[k]
    raise TypeError(f"difsci arrays hold float32, float64, int32, int64 or bool, not {dt}")


def as_scalar(obj) -> Scalar:
    """``ds.f32``, ``np.float32``, ``'float32'`` … -> Scalar."""
    if isinstance(obj, Scalar):
        return obj.strong()
    if obj is float:
        return f64
    if obj is int:
        return i64
    if obj is bool:
        return boolean
    return from_numpy(obj)


def vec(n: int, dtype=f64) -> Vec:
    return Vec(n, as_scalar(dtype))


def mat(n: int, m: int | None = None, dtype=f64) -> Mat:
    if m is not None and not isinstance(m, int):
        dtype, m = m, None
    return Mat(n, n if m is None else m, as_scalar(dtype))


_RANK = {"bool": 0, "i32": 1, "i64": 2, "f32": 3, "f64": 4}


def promote(a: Scalar, b: Scalar) -> Scalar:
    """NumPy 2 (NEP 50) promotion of two scalar types, weak types included."""
    if a == b:
        return a
    if a.weak and b.weak:
        # weak int with weak float -> weak float
        return a if _RANK[a.name] >= _RANK[b.name] else b
    if a.weak or b.weak:
        w, s = (a, b) if a.weak else (b, a)
        if w.is_float and not s.is_float:
            return f64
        if w.is_int and s.is_bool:
            return i64
        return s
    an, bn = a.name, b.name
    if an == "bool":
        return b
    if bn == "bool":
        return a
    if a.is_float and b.is_float:
        return f64 if "f64" in (an, bn) else f32
    if a.is_int and b.is_int:
        return i64 if "i64" in (an, bn) else i32
    # float with int: f32 + i32/i64 -> f64 (numpy); f64 + int -> f64
    return f64


def float_of(t: Scalar) -> Scalar:
    """Result type of true division / transcendental functions on ``t``."""
    if t.is_float:
        return t
    return WEAK_FLOAT if t.weak else f64


def unify(a, b):
    """Type of a local variable assigned values of types ``a`` and ``b`` (None if incompatible)."""
    if a is None:
        return b
    if b is None or a == b:
        return a
    if isinstance(a, Scalar) and isinstance(b, Scalar):
        if a.weak and b.weak:
            return promote(a, b)
        # numba-like: s = 0 then s = s + 0.5 -> float
        if a.is_float or b.is_float:
            if a.weak:
                return b if b.is_float else f64
            if b.weak:
                return a if a.is_float else f64
            return promote(a, b)
        return promote(a, b)
    if isinstance(a, TupleType) and isinstance(b, TupleType):
        if len(a.items) != len(b.items):
            return None
        items = tuple(unify(x, y) for x, y in zip(a.items, b.items))
        return None if None in items else TupleType(items)
    if isinstance(a, (Vec, Mat)) and type(a) is type(b) and a.shape == b.shape:
        return type(a)(*a.shape, promote(a.dtype, b.dtype).strong())
    return None
