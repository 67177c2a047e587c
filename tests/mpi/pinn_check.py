"""Run under ``mpiexec -n 2``: data-parallel PINN loss and gradients equal one process's.

Every rank also computes the single-process reference (all points, no MPI) and
compares; then a short Adam + L-BFGS run with ``distributed=True`` must follow the
single-process trajectory, and all ranks must hold the same weights afterwards.
Prints ``OK pinn`` on rank 0 when every check passed (the test looks for it).
"""
import sys

import numpy as np
import sympy as sp

import difsci as ds

ds.init(backend="python")     # the plain-Python oracle: no numba compile (tiny sizes)
dist = ds.distributed
comm = dist.init()
assert dist.size >= 2, "start with mpiexec -n 2"


def build(seed=0):
    t, x = sp.symbols("t x")
    u = sp.Function("u")
    net = ds.nn.MLP([2, 8, 8, 1], activation="tanh", seed=seed)
    pinn = ds.nn.PINN(net, inputs=(t, x), outputs=(u,),
                      equations=[u(t, x).diff(t) + u(t, x) * u(t, x).diff(x) - 0.01 * u(t, x).diff(x, 2)])
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-1, 1, 13)                         # 13 and 37: uneven shards
    pinn.add_condition(np.stack([0 * x0, x0], 1), -np.sin(np.pi * x0), output=u)
    tb = rng.uniform(0, 1, 6)
    pinn.add_condition(np.stack([tb, np.where(tb < 0.5, -1.0, 1.0)], 1), np.zeros(6), output=u, weight=2.0)
    colloc = ds.nn.box_samples([0, -1], [1, 1], 37, "lhs", seed=2)
    return pinn, colloc


def reference():
    pinn, colloc = build()
    f, g = pinn.loss_and_grad(colloc)
    hist = pinn.train(colloc, steps=5, lr=1e-2, lbfgs_steps=4, verbose=False)
    return f, g, list(hist["loss"]), pinn.net.flat_parameters().numpy().copy()


# rank 0 compiles first (the kernels are cached on disk), then the others load them
if dist.rank == 0:
    ref = reference()
comm.Barrier()
if dist.rank != 0:
    ref = reference()
f1, g1, hist1, w1 = ref

pinn, colloc = build(seed=dist.rank)          # different seeds: train() broadcasts rank 0's weights
dist.broadcast_parameters(pinn.net.flat_parameters())
f2, g2 = pinn.loss_and_grad(colloc, distributed=True)
np.testing.assert_allclose(f2, f1, rtol=1e-12)
np.testing.assert_allclose(g2, g1, rtol=1e-10, atol=1e-13)

pinn, colloc = build(seed=dist.rank)
hist2 = pinn.train(colloc, steps=5, lr=1e-2, lbfgs_steps=4, verbose=False, distributed=True)["loss"]
w2 = pinn.net.flat_parameters().numpy()
assert len(hist2) == len(hist1), (len(hist2), len(hist1))
np.testing.assert_allclose(hist2, hist1, rtol=1e-8)
np.testing.assert_allclose(w2, w1, rtol=1e-7, atol=1e-10)
every = comm.allgather(w2.copy())
assert all(np.array_equal(every[0], w) for w in every), "ranks hold different weights"
every_hist = comm.allgather(list(hist2))
assert all(h == every_hist[0] for h in every_hist), "ranks logged different losses"

if dist.rank == 0:
    print(f"OK pinn: {dist.size} ranks, loss {f2:.6e}, |g| {np.linalg.norm(g2):.3e}, "
          f"max |g - g_ref| {np.abs(g2 - g1).max():.1e}, trajectory of {len(hist2)} steps matches")
sys.stdout.flush()
