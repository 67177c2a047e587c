"""``ds.distributed``: difsci over MPI (mpi4py) -- data-parallel gradients, domain
decomposition with differentiable halo exchange, ensembles.

    mpiexec -n 2 python train.py            # or: mpiexec -n 2 difsci run wave

    import difsci as ds
    dist = ds.distributed
    dist.init()                             # MPI.COMM_WORLD; init(comm=sub) for a sub-communicator
    dist.rank, dist.size, dist.comm

Three ways to spread work over the ranks of ``comm``:

- **data parallel** (``allreduce_grad``, ``PINN.train(..., distributed=True)``): every
  rank holds the whole network and a shard of the data; one in-place ``Allreduce``
  sums the flat gradient per step, so all ranks take the same step;
- **domain decomposition** (``SlabGrid``, ``exchange_halos``): a grid split into slabs
  along one axis, with halo layers; the exchange is recorded on the Tape and its
  adjoint sends halo gradients back to the owning rank;
- **ensembles** (``local_range``, ``gather``): independent members per rank, gathered.

A hand-written data-parallel loop (each rank's loss a partial sum over its shard, scaled
by the *global* count)::

    with ds.Tape() as tape:
        local_loss = my_loss(net, X[lo:hi], n_total=len(X))     # lo, hi = dist.local_range(len(X))
    tape.backward(local_loss)
    dist.allreduce_grad(flat)                 # one in-place Allreduce: the global gradient
    opt.step()                                # Adam/SGD: the same step on every rank
    # for ds.nn.LBFGS, the closure returns dist.allreduce_value(float(local_loss.numpy()))

Values that every rank holds alike (a reduced loss, a gathered array) are
*replicated*; their adjoints take the replicated cotangent, so ``tape.backward`` of
a replicated loss on every rank gives every rank the gradient with respect to its
own local data (no rank seeds more than its share).

mpi4py is optional (``pip install "difsci[mpi]"`` brings mpi4py and MPICH).
"""
from __future__ import annotations

import os

from ..errors import DifsciError

__all__ = [
    "DistributedError",
    "SlabGrid",
    "allreduce_grad",
    "allreduce_value",
    "broadcast_parameters",
    "comm",
    "exchange_halos",
    "gather",
    "init",
    "is_initialized",
    "launched_by_mpi",
    "local_range",
    "rank",
    "size",
    "sum_across",
]

#: environment variables that MPI launchers set in the processes they start
_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS",
                  "MV2_COMM_WORLD_SIZE", "I_MPI_HYDRA_HOST_FILE")


class DistributedError(DifsciError):
    """mpi4py is missing, the program was not started by an MPI launcher, or ranks disagree."""


class _State:
    comm = None


_state = _State()


def mpi():
    """The ``mpi4py.MPI`` module, or a DistributedError saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise DistributedError(
            "ds.distributed needs mpi4py and an MPI library, which are not installed "
            f"({e}).\nhint: pip install \"difsci[mpi]\"   (mpi4py and MPICH from PyPI; they "
            "provide `mpiexec`), then start the program with `mpiexec -n 2 python ...`") from None
    return MPI


def launched_by_mpi() -> bool:
    """Whether an MPI launcher (mpiexec/mpirun/srun with PMI) started this process."""
    return any(v in os.environ for v in _LAUNCHER_VARS)


def launcher_size() -> int:
    """The number of processes the launcher started (from its environment; 1 if none)."""
    for v in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        if os.environ.get(v, "").isdigit():
            return int(os.environ[v])
    return 1


def init(comm=None, threads: str | int | None = "auto"):
    """Start difsci's MPI layer on ``comm`` (default ``MPI.COMM_WORLD``) and return it.

    Without ``comm``, the process must have been started by an MPI launcher
    (``mpiexec -n N ...``); otherwise a DistributedError says how to start it (pass
    ``comm=MPI.COMM_SELF`` to run "distributed" code on one process on purpose).
    ``threads="auto"`` gives each rank an equal share of the node's cores for numba's
    parallel loops (unless ``NUMBA_NUM_THREADS`` is set); an int sets the count;
    None leaves numba alone.  Collective: every rank of ``comm`` calls it.
    """
    MPI = mpi()
    if comm is None:
        if not launched_by_mpi():
            raise DistributedError(
                "ds.distributed.init(): this process was not started by an MPI launcher, so it "
                "would run alone (1 rank).\nhint: start it with `mpiexec -n 2 python script.py` "
                "(or `mpiexec -n 2 difsci run NAME`), or pass comm=MPI.COMM_SELF to run on one "
                "process deliberately")
        comm = MPI.COMM_WORLD
    _state.comm = comm
    if threads is not None:
        _set_threads(comm, threads)
    return comm


def _set_threads(comm, threads) -> None:
    import numba
    if threads == "auto":
        if "NUMBA_NUM_THREADS" in os.environ:
            return
        local = int(os.environ.get("MPI_LOCALNRANKS", "0")) or _node_size(comm)
        threads = max(1, (os.cpu_count() or 1) // max(local, 1))
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))


def _node_size(comm) -> int:
    MPI = mpi()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return node.size
    finally:
        node.Free()


def is_initialized() -> bool:
    return _state.comm is not None


def get_comm(comm=None):
    """``comm`` if given, else the communicator of ``init()`` (initialising on first use)."""
    if comm is not None:
        return comm
    if _state.comm is None:
        init()
    return _state.comm


def local_range(n: int, comm=None) -> tuple[int, int]:
    """The block ``[start, stop)`` of ``range(n)`` this rank takes (sizes differ by at most 1)."""
    c = get_comm(comm)
    return block(n, c.size, c.rank)


def block(n: int, parts: int, k: int) -> tuple[int, int]:
    """Block ``k`` of ``range(n)`` cut into ``parts`` contiguous blocks (the first ones longer)."""
    q, r = divmod(n, parts)
    start = k * q + min(k, r)
    return start, start + q + (1 if k < r else 0)


def __getattr__(name):
    # ds.distributed.rank / size / comm: of the initialised communicator (init() on first use)
    if name in ("rank", "size"):
        return getattr(get_comm(), name)
    if name == "comm":
        return get_comm()
    raise AttributeError(f"module 'difsci.distributed' has no attribute {name!r}")


from .data import (
    allreduce_grad,
    allreduce_value,
    broadcast_parameters,
    gather,
    sum_across,
)
from .grid import SlabGrid, exchange_halos
