"""Run under ``mpiexec -n 2`` (or more): dot-product tests of the adjoints of the MPI steps.

For a linear map A recorded on the Tape, with random x and u: <u, A x> = <A^T u, x>.
- ``exchange_halos`` maps each rank's local block (halos included) in place; both
  sides are summed over the ranks.
- ``sum_across`` and ``gather`` have replicated outputs: u is the same on every rank
  and <u, A x> is counted once (the convention of ds.distributed's replicated values).
Prints ``OK halo`` on rank 0 when every check passed.
"""
import sys

import numpy as np

import difsci as ds

dist = ds.distributed
comm = dist.init()
assert dist.size >= 2, "start with mpiexec -n 2"
rng = np.random.default_rng(100 + dist.rank)      # different data on each rank


def total(v):
    return dist.allreduce_value(float(v))


def check(name, forward, x, u, replicated=False):
    """forward(x) -> out (recorded); |<u, out> - <A^T u, x>|."""
    x0 = x.numpy().copy()
    with ds.Tape() as tape:
        out = forward(x)
    lhs = float(np.vdot(u, out.numpy()))
    lhs = lhs if replicated else total(lhs)
    x.zero_grad()
    tape.backward(out, u)
    rhs = total(np.vdot(x.grad.numpy(), x0))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs)), (name, lhs, rhs)
    return abs(lhs - rhs)


worst = 0.0
for halo in (1, 2):
    for shape, axis in (((12, 5), 0), ((3, 13, 4), 1), ((9, 4, 3), 0)):
        grid = dist.SlabGrid((shape[axis],), halo=halo)
        local = grid.local_shape(shape, axis)
        x = ds.array(rng.standard_normal(local), requires_grad=True)

        def exchange(a, grid=grid, axis=axis):      # in place: A maps the block to itself
            grid.exchange_halos(a, axis=axis)
            return a
        worst = max(worst, check(f"halo {halo}, shape {shape}, axis {axis}", exchange, x,
                                 rng.standard_normal(local)))

# the exchange really moves rows: the neighbours' edge rows land in the halos
grid = dist.SlabGrid((10,), halo=2)
a = grid.zeros((10, 3))
a.numpy()[grid.owned] = np.arange(grid.lo, grid.hi)[:, None]
dist.exchange_halos(a)                               # the module function: the last grid
np.testing.assert_array_equal(a.numpy()[:, 0], np.arange(grid.start, grid.stop))

x = ds.array(rng.standard_normal((4, 3)), requires_grad=True)
same = np.random.default_rng(7)                      # the same u on every rank
worst = max(worst, check("sum_across", dist.sum_across, x, same.standard_normal((4, 3)), True))
worst = max(worst, check("gather", dist.gather, x, same.standard_normal((dist.size, 4, 3)), True))
np.testing.assert_array_equal(dist.gather(x).numpy()[dist.rank], x.numpy())
# gather(concat=True): ranks with different lengths (ensemble members split by local_range)
lo, hi = dist.local_range(2 * dist.size + 1)
xs = ds.array(rng.standard_normal((hi - lo, 3)), requires_grad=True)
n_all = 2 * dist.size + 1
worst = max(worst, check("gather concat", lambda a: dist.gather(a, concat=True), xs,
                         same.standard_normal((n_all, 3)), True))
np.testing.assert_array_equal(dist.gather(xs, concat=True).numpy()[lo:hi], xs.numpy())

# a sub-communicator (ranks in reverse order) works like COMM_WORLD
world_rank = comm.rank
sub = comm.Split(color=0, key=dist.size - 1 - world_rank)
dist.init(comm=sub)
assert dist.comm is sub and dist.rank == dist.size - 1 - world_rank
grid = dist.SlabGrid((7,))
a = grid.zeros((7, 2))
a.numpy()[grid.owned] = np.arange(grid.lo, grid.hi)[:, None]
grid.exchange_halos(a)
np.testing.assert_array_equal(a.numpy()[:, 1], np.arange(grid.start, grid.stop))
dist.init(comm=comm)

if dist.rank == 0:
    print(f"OK halo: {dist.size} ranks; dot-product tests of exchange_halos (halo 1 and 2, 2-D and 3-D, "
          f"split axis 0 and 1), sum_across, gather; a sub-communicator: worst |<u,Ax> - <A^T u,x>| {worst:.1e}")
sys.stdout.flush()
