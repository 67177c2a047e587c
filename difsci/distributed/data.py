"""Data parallelism and ensembles over MPI: gradient and value reductions, parameter
broadcast, and the differentiable collectives ``sum_across`` and ``gather``.

Losses are *sums over the global data set* split into per-rank partial sums (a mean
is a sum with the global count in its scale): rank r computes L_r on its shard, the
global loss is L = sum_r L_r and its gradient sum_r dL_r/dw -- one in-place
``Allreduce`` of the flat gradient.  One process holding all the data computes the
same numbers up to the order of floating-point additions.
"""
from __future__ import annotations

import numpy as np

from ..array import Array
from ..tape import current_tape
from . import get_comm, mpi


def _buffer(x) -> np.ndarray:
    """The numpy buffer behind ``x`` (a ds.Array's data; numpy as is); CPU only."""
    if isinstance(x, Array):
        if x.device != "cpu":
            raise ValueError("ds.distributed works on CPU arrays; copy GPU arrays with .to('cpu') first")
        return x.data
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"expected a ds.Array or a numpy array, not {type(x).__name__}")


def _contiguous(a: np.ndarray) -> np.ndarray:
    """``a`` or a C-ordered copy (np.ascontiguousarray would turn a 0-d array into 1-d)."""
    return a if a.flags.c_contiguous else a.copy(order="C")


def allreduce_grad(params, mean: bool = False, comm=None) -> np.ndarray:
    """Sum ``params.grad`` over the ranks, in place (one ``Allreduce``); returns the buffer.

    ``params``: the flat parameter array (``net.flat_parameters()``) or any ds.Array with
    ``requires_grad``; a numpy array is reduced itself.  ``mean=True`` divides by the
    number of ranks (for losses that are per-rank means of equal-sized shards).
    """
    MPI = mpi()
    c = get_comm(comm)
    if isinstance(params, Array):
        if params.grad is None:
            raise ValueError("allreduce_grad needs an array created with requires_grad=True")
        buf = _buffer(params.grad)
    else:
        buf = _buffer(params)
    if buf.flags.c_contiguous:
        c.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    else:                                   # a strided view: reduce a copy, write it back
        tmp = _contiguous(buf)
        c.Allreduce(MPI.IN_PLACE, tmp, op=MPI.SUM)
        buf[...] = tmp
    if mean:
        buf /= c.size
    return buf


def allreduce_value(value: float, comm=None) -> float:
    """The sum over the ranks of a float, bitwise identical on every rank.

    The per-rank values are gathered and added in rank order on every rank, so
    decisions taken on the result (an L-BFGS line search) agree across ranks --
    a rank that branched differently would deadlock the next collective.
    """
    c = get_comm(comm)
    vals = np.empty(c.size, dtype=np.float64)
    c.Allgather(np.array([float(value)]), vals)
    total = 0.0
    for v in vals:
        total += float(v)
    return total


def broadcast_parameters(params, root: int = 0, comm=None) -> None:
    """Copy the parameters of rank ``root`` to every rank (in place; a list or one array)."""
    c = get_comm(comm)
    for p in params if isinstance(params, (list, tuple)) else [params]:
        buf = _buffer(p)
        if buf.flags.c_contiguous:
            c.Bcast(buf, root=root)
        else:
            tmp = _contiguous(buf)
            c.Bcast(tmp, root=root)
            buf[...] = tmp


def sum_across(x: Array, comm=None) -> Array:
    """``sum_r x_r`` over the ranks: a new replicated Array, differentiable.

    Recorded on an active Tape; the adjoint adds the (replicated) cotangent of the
    sum to each rank's ``x.grad``, so ``tape.backward(total)`` on every rank gives each
    rank d total / d x_r.
    """
    MPI = mpi()
    c = get_comm(comm)
    src = _contiguous(_buffer(x))
    out_data = np.empty_like(src)
    c.Allreduce(src, out_data, op=MPI.SUM)
    out = Array(out_data, x.elem, requires_grad=x.requires_grad)
    tape = current_tape()
    if tape is not None and x.requires_grad:
        def backward():
            x.grad.data[...] += out.grad.data
        tape.record_custom(backward, reads=(x,), writes=(out,), name="sum_across")
    return out


def gather(x, concat: bool = False, comm=None) -> Array:
    """Every rank's ``x`` on every rank (``Allgather``): stacked on a new leading axis,
    shape ``(size,) + x.shape`` -- or, with ``concat=True``, concatenated along axis 0
    in rank order (the ranks' lengths may differ: ensemble members split by ``local_range``).

    For ensembles: each rank runs its own members and ``gather`` collects a result (a
    loss, a final state, a gradient ``gather(param.grad)``) on every rank.  With a
    ds.Array that requires grad, on an active Tape, the result is differentiable: the
    adjoint takes this rank's part of the (replicated) cotangent into ``x.grad``.
    """
    c = get_comm(comm)
    src = _contiguous(_buffer(x))
    shapes = c.allgather(src.shape)
    if concat:
        if src.ndim == 0 or any(sh[1:] != src.shape[1:] for sh in shapes):
            raise ValueError(f"gather(concat=True) needs arrays that differ only in their first axis; "
                             f"the ranks hold {shapes}")
        counts = [int(np.prod(sh)) for sh in shapes]
        out_data = np.empty((sum(sh[0] for sh in shapes),) + src.shape[1:], dtype=src.dtype)
        c.Allgatherv(src, [out_data, counts])
        start = sum(sh[0] for sh in shapes[:c.rank])
        part = slice(start, start + src.shape[0])
    else:
        if any(sh != src.shape for sh in shapes):
            raise ValueError(f"gather needs the same shape on every rank (or concat=True); the ranks "
                             f"hold {shapes}")
        out_data = np.empty((c.size,) + src.shape, dtype=src.dtype)
        c.Allgather(src, out_data)
        part = c.rank
    if not isinstance(x, Array):
        return Array(out_data, _elem(out_data))
    out = Array(out_data, x.elem, requires_grad=x.requires_grad)
    tape = current_tape()
    if tape is not None and x.requires_grad:
        def backward():
            x.grad.data[...] += out.grad.data[part]
        tape.record_custom(backward, reads=(x,), writes=(out,), name="gather")
    return out


def _elem(a: np.ndarray):
    from ..lang import types as T
    return T.from_numpy(a.dtype)


# ---------------------------------------------------------------- PINN data parallelism
def pinn_loss_and_grad(pinn, collocation, comm=None):
    """``PINN.loss_and_grad`` over a collocation set (the same on every rank) sharded by rank.

    Rank r evaluates the residual on its block of the points and the conditions on its
    block of each condition set, each scaled by the *global* count, so the partial
    losses add up to the single-process loss; one Allreduce sums the gradient.
    Returns (global loss, flat gradient), identical on every rank.
    """
    from ..tape import Tape
    from . import block
    c = get_comm(comm)
    X = np.ascontiguousarray(collocation, dtype=pinn.net.dtype)
    lo, hi = block(len(X), c.size, c.rank)
    conds = []
    for pts, vals, out, w in pinn.conditions:
        a, b = block(len(pts), c.size, c.rank)
        conds.append((pts[a:b], vals[a:b], out, w, len(pts)))
    flat = pinn.net.flat_parameters()
    flat.zero_grad()
    with Tape() as tape:
        loss = pinn._record_loss(X[lo:hi], n_total=len(X), conditions=conds)
    tape.backward(loss)
    allreduce_grad(flat, comm=c)
    return allreduce_value(float(loss.numpy()), comm=c), flat.grad.numpy().copy()
