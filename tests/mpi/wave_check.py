"""Run under ``mpiexec -n 2``: the wave example split into slabs over the ranks gives the
forward field and the gradient of the one-process run (examples/physics/wave.py).

References, computed on every rank without MPI: the one-launch ``simulate`` kernel
(a ``ds.serial`` time loop; square grids) and ``DistributedWave`` on ``COMM_SELF``
(the per-step kernels on one rank).  Prints ``OK wave`` on rank 0 when all checks pass.
"""
import sys

import numpy as np
from mpi4py import MPI

import difsci as ds
from difsci import cli

dist = ds.distributed
comm = dist.init()
assert dist.size >= 2, "start with mpiexec -n 2"
wave = cli.load_module(cli.EXAMPLES_DIR / "wave.py", "difsci_examples_wave")
T = 12


def one_launch(x):
    """loss, h, d loss / d h0 of the one-launch simulation (square grid)."""
    n, m = x.shape
    h = ds.zeros((T + 1, n, m), requires_grad=True)
    h0 = ds.array(x, requires_grad=True)
    loss = ds.zeros((), requires_grad=True)
    with ds.Tape() as tape:
        wave.simulate(h0, h, wave.COURANT2, wave.DAMPING)
        wave.mismatch_rows(h, ds.array(wave.target_pattern(n, m)), 0, n, 1.0 / (n * m), loss)
    tape.backward(loss)
    return float(loss.numpy()), h.numpy().copy(), h0.grad.numpy().copy()


def run(x, comm):
    """loss, h, d loss / d h0 of DistributedWave on ``comm``, gathered."""
    sim = wave.DistributedWave(comm=comm, n=x.shape[0], m=x.shape[1], T=T)
    g = sim.grid
    sim.h0.numpy()[...] = x[g.start:g.stop]
    loss = sim.forward_backward()
    halo_rows = [k for k in range(g.n_local) if not g.owned.start <= k < g.owned.stop]
    # halo gradients were handed to their owners: nothing is left in a halo row
    assert not np.any(sim.h0.grad.numpy()[halo_rows]) and not np.any(sim.h.grad.numpy()[:, halo_rows])
    return loss, g.gather(sim.h, axis=1), g.gather(sim.h0.grad), sim


def references(xs):
    return one_launch(xs[0]), [run(x, MPI.COMM_SELF)[:3] for x in xs]


rng = np.random.default_rng(0)
xs = [0.1 * rng.standard_normal((11, 11)), 0.1 * rng.standard_normal((13, 7))]   # uneven slabs
if dist.rank == 0:               # rank 0 compiles first (cached on disk), then the others load
    one, single = references(xs)
comm.Barrier()
if dist.rank != 0:
    one, single = references(xs)


def same(a, b):
    np.testing.assert_allclose(a[0], b[0], rtol=1e-13)                # loss
    np.testing.assert_allclose(a[1], b[1], rtol=1e-13, atol=1e-15)    # the whole history h
    np.testing.assert_allclose(a[2], b[2], rtol=1e-11, atol=1e-15)    # d loss / d h0
    assert np.abs(a[2]).max() > 0


same(single[0], one)             # per-step kernels on one rank == the one-launch simulation
errs = []
for x, ref in zip(xs, single):
    got = run(x, comm)
    same(got[:3], ref)
    errs.append(np.abs(got[2] - ref[2]).max())
sim = got[3]
# ensembles: gather each rank's partial loss (a differentiable Allgather)
parts = dist.gather(sim.loss_part).numpy()
np.testing.assert_allclose(parts.sum(), single[-1][0], rtol=1e-13)

# an ensemble: 5 members (initial fields) split over the ranks, each run alone with the one-launch
# simulation; losses and gradients gathered equal a loop over all members on one process
members = [0.1 * np.random.default_rng(50 + k).standard_normal((9, 9)) for k in range(5)]
lo, hi = dist.local_range(len(members))
mine = [one_launch(x) for x in members[lo:hi]]
losses = dist.gather(np.array([r[0] for r in mine]), concat=True).numpy()
grads = dist.gather(np.array([r[2] for r in mine]).reshape(-1, 9, 9), concat=True).numpy()
every = [one_launch(x) for x in members]
np.testing.assert_allclose(losses, [r[0] for r in every], rtol=1e-13)
np.testing.assert_allclose(grads, [r[2] for r in every], rtol=1e-12, atol=1e-16)

if dist.rank == 0:
    print(f"OK wave: {dist.size} ranks, grids 11x11 and 13x7, {T} steps; loss {single[0][0]:.6e}; "
          f"max |grad - grad_1rank| {max(errs):.1e} (|grad| {np.abs(one[2]).max():.1e}); "
          f"ensemble of {len(members)} members gathered")
sys.stdout.flush()
