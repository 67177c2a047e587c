"""Domain decomposition: a grid split into slabs along one axis, with halo layers, and
a halo exchange that is recorded on the Tape.

A global axis of ``n`` cells is cut into contiguous blocks, one per rank (``owned``
rows ``[lo, hi)``).  Each rank stores its block plus ``halo`` rows on each side that
has a neighbour -- global rows ``[max(lo - halo, 0), min(hi + halo, n))`` -- so a
stencil kernel that updates rows ``(r, n_local - r)`` of its array updates exactly
the owned rows (and leaves the global boundary rows alone) on every rank: the
kernel runs unchanged.  Between steps, ``exchange_halos`` copies each rank's edge
rows into its neighbours' halos::

    rank 0   [ b0 | r1 ... r4 | h5 ]            h = halo copy of a row owned by the neighbour
    rank 1        [ h4 | r5 ... r8 | h9 ]
    rank 2             ...

Its adjoint runs the copy backwards: the gradient that reached a halo row is sent
to the owner, added to the owned row's gradient, and zeroed in the halo (the
forward overwrote the halo, so its old value had no effect).
"""
from __future__ import annotations

import numpy as np

from ..array import Array
from ..array import zeros as _zeros
from ..tape import current_tape
from . import DistributedError, block, get_comm, mpi

_TAG_UP, _TAG_DOWN = 3101, 3102
_last_grid = [None]


class SlabGrid:
    """A global axis of ``n`` cells split into slabs, one per rank of ``comm``, with halos.

    ``shape``: the global grid shape (its first entry is the split length ``n``; the
    other entries are informational).  Attributes: ``lo, hi`` (owned global rows),
    ``start, stop`` (global rows stored locally, halos included), ``n_local``,
    ``owned`` (a slice of local rows that this rank owns).
    """

    def __init__(self, shape, halo: int = 1, comm=None):
        self.comm = get_comm(comm)
        self.shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        self.n, self.halo = self.shape[0], int(halo)
        p, r = self.comm.size, self.comm.rank
        if self.halo < 0:
            raise ValueError(f"halo must be >= 0, not {halo}")
        if self.n // p < max(self.halo, 1):
            raise DistributedError(f"a grid of {self.n} rows cannot be split over {p} ranks with "
                                   f"halo {self.halo}: each rank needs at least {max(self.halo, 1)} rows")
        self.rank, self.size = r, p
        self.lo, self.hi = block(self.n, p, r)
        self.start, self.stop = max(self.lo - self.halo, 0), min(self.hi + self.halo, self.n)
        self.n_local = self.stop - self.start
        self.owned = slice(self.lo - self.start, self.hi - self.start)
        MPI = mpi()
        self.up = r - 1 if r > 0 else MPI.PROC_NULL          # owner of the rows above lo
        self.down = r + 1 if r < p - 1 else MPI.PROC_NULL    # owner of the rows from hi on
        _last_grid[0] = self

    def __repr__(self):
        return (f"SlabGrid(n={self.n}, halo={self.halo}, rank {self.rank}/{self.size}: owns "
                f"[{self.lo}, {self.hi}), stores [{self.start}, {self.stop}))")

    # ------------------------------------------------------------ arrays
    def local_shape(self, global_shape, axis: int = 0) -> tuple:
        s = list(global_shape)
        if s[axis] != self.n:
            raise ValueError(f"axis {axis} of shape {tuple(global_shape)} has {s[axis]} cells; the grid has {self.n}")
        s[axis] = self.n_local
        return tuple(s)

    def zeros(self, global_shape, axis: int = 0, dtype=np.float64, requires_grad: bool = False) -> Array:
        """This rank's block (halos included) of a zero array of ``global_shape``."""
        return _zeros(self.local_shape(global_shape, axis), dtype=dtype, requires_grad=requires_grad)

    def scatter(self, global_array, axis: int = 0, requires_grad: bool = False, dtype=None) -> Array:
        """This rank's block (halos included) of ``global_array`` (which every rank holds)."""
        from ..array import array
        g = np.asarray(global_array)
        self.local_shape(g.shape, axis)
        return array(np.take(g, np.arange(self.start, self.stop), axis=axis), dtype=dtype,
                     requires_grad=requires_grad)

    def interior(self, a, axis: int = 0):
        """The owned rows of a local block (a view: a ds.Array's ``.grad`` is viewed alike)."""
        idx = (slice(None),) * axis + (self.owned,)
        return a[idx]

    def gather(self, a, axis: int = 0, root: int | None = None) -> np.ndarray | None:
        """The global array assembled from every rank's owned rows (numpy).

        On every rank (``root=None``), or only on ``root`` (the others get None).
        """
        own = np.ascontiguousarray(np.moveaxis(np.asarray(self.interior(_np(a), axis)), axis, 0))
        parts = self.comm.allgather(own) if root is None else self.comm.gather(own, root=root)
        if parts is None:
            return None
        return np.moveaxis(np.concatenate(parts, axis=0), 0, axis)

    # ------------------------------------------------------------ halos
    def exchange_halos(self, a, axis: int = 0) -> None:
        """Fill the halo rows of ``a`` (a local block) from the neighbours' owned rows.

        Collective over the grid's communicator.  For a ds.Array that requires grad,
        on an active Tape, the exchange is recorded; its adjoint sends the halo rows'
        gradients back to their owners and adds them there.
        """
        if self.halo == 0:
            return
        data = _np(a)
        if data.shape[axis] != self.n_local:
            raise ValueError(f"axis {axis} of the array has {data.shape[axis]} rows; this rank's block "
                             f"has {self.n_local} ({self!r})")
        self._copy_to_halos(np.moveaxis(data, axis, 0))
        tape = current_tape()
        if tape is not None and isinstance(a, Array) and a.requires_grad:
            g = a.grad

            def backward():
                self._add_from_halos(np.moveaxis(g.data, axis, 0))
            tape.record_custom(backward, reads=(a,), writes=(a,), name="exchange_halos")

    def _rows(self):
        o0, o1, h = self.owned.start, self.owned.stop, self.halo
        return o0, o1, h

    def _copy_to_halos(self, d: np.ndarray) -> None:
        o0, o1, h = self._rows()
        buf = np.empty((h,) + d.shape[1:], dtype=d.dtype)
        # my first owned rows go up (into the neighbour's lower halo); the lower halo comes from below
        self.comm.Sendrecv(np.ascontiguousarray(d[o0:o0 + h]), dest=self.up, sendtag=_TAG_UP,
                           recvbuf=buf, source=self.down, recvtag=_TAG_UP)
        if self.down != mpi().PROC_NULL:
            d[o1:o1 + h] = buf
        self.comm.Sendrecv(np.ascontiguousarray(d[o1 - h:o1]), dest=self.down, sendtag=_TAG_DOWN,
                           recvbuf=buf, source=self.up, recvtag=_TAG_DOWN)
        if self.up != mpi().PROC_NULL:
            d[o0 - h:o0] = buf

    def _add_from_halos(self, g: np.ndarray) -> None:
        """The adjoint of ``_copy_to_halos`` on the gradient buffer ``g``."""
        o0, o1, h = self._rows()
        buf = np.zeros((h,) + g.shape[1:], dtype=g.dtype)
        low = np.zeros_like(buf) if self.down == mpi().PROC_NULL else np.ascontiguousarray(g[o1:o1 + h])
        self.comm.Sendrecv(low, dest=self.down, sendtag=_TAG_UP, recvbuf=buf, source=self.up, recvtag=_TAG_UP)
        if self.up != mpi().PROC_NULL:
            g[o0:o0 + h] += buf
        high = np.zeros_like(buf) if self.up == mpi().PROC_NULL else np.ascontiguousarray(g[o0 - h:o0])
        self.comm.Sendrecv(high, dest=self.up, sendtag=_TAG_DOWN, recvbuf=buf, source=self.down,
                           recvtag=_TAG_DOWN)
        if self.down != mpi().PROC_NULL:
            g[o1 - h:o1] += buf
        g[:o0] = 0.0
        g[o1:] = 0.0


def exchange_halos(a, grid: SlabGrid | None = None, axis: int = 0) -> None:
    """``grid.exchange_halos(a, axis)``; ``grid`` defaults to the last SlabGrid created."""
    grid = grid or _last_grid[0]
    if grid is None:
        raise DistributedError("exchange_halos: create a ds.distributed.SlabGrid first (or pass grid=)")
    grid.exchange_halos(a, axis)


def _np(a) -> np.ndarray:
    if isinstance(a, Array):
        if a.device != "cpu":
            raise ValueError("ds.distributed works on CPU arrays; copy GPU arrays with .to('cpu') first")
        return a.data
    return np.asarray(a)
