"""Values the frontend juggles while lowering: scalars are IR expressions;
vectors/matrices are lists of component expressions; arrays, tuples and
compile-time Python objects have their own wrappers."""
from __future__ import annotations

from dataclasses import dataclass

from .. import types as T
from ..ir import ArrayInfo, Expr


@dataclass
class VV:
    """A vector or matrix value: its components (row-major) and its type."""

    comps: list
    dtype: object  # Vec | Mat

    @property
    def is_mat(self) -> bool:
        return isinstance(self.dtype, T.Mat)


@dataclass
class Tup:
    items: list


@dataclass
class Arr:
    name: str
    info: ArrayInfo


@dataclass
class CT:
    """A compile-time Python object (module, func, type, static int, ...)."""

    obj: object


def type_of(v):
    """The difsci type of a lowered value (for unification and specialisation)."""
    if isinstance(v, Expr):
        return v.ty
    if isinstance(v, VV):
        return v.dtype
    if isinstance(v, Tup):
        return T.TupleType(tuple(type_of(i) for i in v.items))
    if isinstance(v, Arr):
        return v.info
    return None
