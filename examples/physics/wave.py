"""2-D wave equation: optimise the initial displacement so the field at time T forms a target pattern

The wave equation u_tt = c^2 (u_xx + u_yy) runs on an n x n grid (fixed edges)
for T leapfrog steps -- the whole simulation is ONE kernel launch (a
``ds.serial`` time loop around a parallel loop over the grid).  The field's
history lives on a time axis ``h[t, i, j]`` so reverse mode can replay it
(API section 5).  We differentiate the mismatch between the final field h[T]
and a target image with respect to the initial displacement h[0] and descend
the gradient (with momentum) -- DiffTaichi's ``wave`` example, written in difsci.

    difsci run wave --plot wave.png --gif wave.gif
    mpiexec -n 2 difsci run wave --plot wave.png      (domain decomposition over MPI ranks)
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import difsci as ds

# Courant number c dt / dx = 0.5 (stable below 1/sqrt(2)); a little damping.
COURANT2 = 0.25
DAMPING = 0.002


@ds.kernel
def simulate(h0: ds.f64[:, :], h: ds.f64[:, :, :], c2: float, damping: float):
    """h[0] = h[1] = h0 (starting at rest), then h[t + 1] = leapfrog step of h[t], h[t - 1].

    h0: (n, n) initial displacement; h: (T + 1, n, n), edges held at zero.
    (difsci.kernels.stencils.laplacian2d is one launch per step; the 5-point
    stencil is written inline here so that the whole run is one launch.)
    """
    T = h.shape[0] - 1
    n = h.shape[1]
    for i, j in ds.ndrange((1, n - 1), (1, n - 1)):
        h[0, i, j] = h0[i, j]
        h[1, i, j] = h0[i, j]
    for t in ds.serial(range(1, T)):
        for i, j in ds.ndrange((1, n - 1), (1, n - 1)):
            lap = h[t, i + 1, j] + h[t, i - 1, j] + h[t, i, j + 1] + h[t, i, j - 1] - 4.0 * h[t, i, j]
            h[t + 1, i, j] = (2.0 * h[t, i, j] - (1.0 - damping) * h[t - 1, i, j] + c2 * lap) / (1.0 + damping)


@ds.kernel
def mismatch(h: ds.f64[:, :, :], target: ds.f64[:, :], loss: ds.f64[()]):
    """loss = mean over the grid of (h[T] - target)^2."""
    T = h.shape[0] - 1
    n = h.shape[1]
    scale = 1.0 / (n * n)
    for i, j in ds.ndrange(n, n):
        loss[None] += scale * (h[T, i, j] - target[i, j]) ** 2


def target_pattern(n: int, m: int | None = None) -> np.ndarray:
    """A ring with a bar through it (values 0..1), smoothed a little: (n, m), m = n by default."""
    m = n if m is None else m
    x, y = np.mgrid[0:n, 0:m] / (np.array([n, m])[:, None, None] - 1.0)   # image[i, j] at (x_i, y_j)
    r = np.hypot(x - 0.5, y - 0.5)
    ring = np.exp(-((r - 0.28) / 0.03) ** 2)
    bar = np.exp(-((y - 0.5) / 0.03) ** 2) * (np.abs(x - 0.5) < 0.28)
    return np.maximum(ring, bar)


class Wave:
    """The simulation, its arrays and the parameter being optimised (``self.h0``)."""

    def __init__(self, size: str = "default"):
        self.n, self.T = (32, 48) if size == "small" else (128, 200)
        self.target = ds.array(target_pattern(self.n))
        self.h = ds.zeros((self.T + 1, self.n, self.n), requires_grad=True)   # the history
        self.h0 = ds.zeros((self.n, self.n), requires_grad=True)             # start from a flat surface
        self.loss_arr = ds.zeros((), requires_grad=True)

    def forward(self) -> float:
        self.loss_arr.fill(0.0)
        simulate(self.h0, self.h, COURANT2, DAMPING)
        mismatch(self.h, self.target, self.loss_arr)
        return float(self.loss_arr.numpy())

    def forward_backward(self) -> float:
        """The loss, with d loss / d h0 left in ``self.h0.grad``."""
        with ds.Tape() as tape:
            loss = self.forward()
        tape.zero_grads()              # gradients accumulate: clear those of the last iteration
        tape.backward(self.loss_arr)
        return loss

    # the flat-vector view used by the tests (and by optimisers such as L-BFGS)
    def loss_and_grad(self, x: np.ndarray):
        self.h0.numpy()[...] = x.reshape(self.h0.shape)
        return self.forward_backward(), np.array(self.h0.grad.numpy()).ravel()

    def x0(self) -> np.ndarray:
        return np.zeros(self.n * self.n)


# ----------------------------------------------------------------- over MPI ranks
# The same simulation with the grid split into slabs of rows, one per MPI rank
# (ds.distributed.SlabGrid).  The time loop moves to Python: after each step the
# ranks exchange one halo row with their neighbours, an exchange the Tape records
# and differentiates.  The step kernel is the loop body of `simulate`, unchanged:
# on each rank it updates rows (1, n_local - 1) of its block, which are exactly
# the rows it owns.

@ds.kernel
def start(h0: ds.f64[:, :], h: ds.f64[:, :, :]):
    """h[0] = h[1] = h0 inside the (local) grid."""
    n, m = h.shape[1], h.shape[2]
    for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
        h[0, i, j] = h0[i, j]
        h[1, i, j] = h0[i, j]


@ds.kernel
def step(h: ds.f64[:, :, :], t: int, c2: float, damping: float):
    """One leapfrog step, h[t + 1] from h[t] and h[t - 1], inside the (local) grid."""
    n, m = h.shape[1], h.shape[2]
    for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
        lap = h[t, i + 1, j] + h[t, i - 1, j] + h[t, i, j + 1] + h[t, i, j - 1] - 4.0 * h[t, i, j]
        h[t + 1, i, j] = (2.0 * h[t, i, j] - (1.0 - damping) * h[t - 1, i, j] + c2 * lap) / (1.0 + damping)


@ds.kernel
def mismatch_rows(h: ds.f64[:, :, :], target: ds.f64[:, :], r0: int, r1: int, scale: float,
                  loss: ds.f64[()]):
    """loss += scale * sum over rows r0..r1-1 (the rows this rank owns) of (h[T] - target)^2."""
    T = h.shape[0] - 1
    for i, j in ds.ndrange((r0, r1), h.shape[2]):
        loss[None] += scale * (h[T, i, j] - target[i, j]) ** 2


class DistributedWave:
    """``Wave`` on a grid split into slabs of rows over the ranks of ``comm`` (ds.distributed).

    ``h0``, ``h`` and ``target`` hold this rank's rows plus one halo row per neighbour;
    the loss is the global mean, the same on every rank; ``h0.grad`` holds d loss / d h0
    for this rank's rows (``grid.gather(h0.grad)`` assembles the whole gradient).
    """

    def __init__(self, size: str = "default", comm=None, n: int | None = None, m: int | None = None,
                 T: int | None = None):
        from difsci import distributed as dist
        self.dist = dist
        n0, T0 = (32, 48) if size == "small" else (128, 200)
        self.n, self.T = n or n0, T or T0
        self.m = m or self.n
        self.grid = dist.SlabGrid((self.n, self.m), halo=1, comm=comm)
        self.target = self.grid.scatter(target_pattern(self.n, self.m))
        self.h = self.grid.zeros((self.T + 1, self.n, self.m), axis=1, requires_grad=True)
        self.h0 = self.grid.zeros((self.n, self.m), requires_grad=True)
        self.loss_part = ds.zeros((), requires_grad=True)
        self.loss_arr = None

    def forward(self) -> float:
        g, h = self.grid, self.h
        self.loss_part.fill(0.0)
        start(self.h0, h)
        g.exchange_halos(h[0])
        g.exchange_halos(h[1])
        for t in range(1, self.T):
            step(h, t, COURANT2, DAMPING)
            g.exchange_halos(h[t + 1])
        mismatch_rows(h, self.target, g.owned.start, g.owned.stop, 1.0 / (self.n * self.m), self.loss_part)
        self.loss_arr = self.dist.sum_across(self.loss_part, comm=g.comm)
        return float(self.loss_arr.numpy())

    def forward_backward(self) -> float:
        with ds.Tape() as tape:
            loss = self.forward()
        for a in (self.h, self.h0, self.loss_part):     # (tape.zero_grads would zero h once per step)
            a.zero_grad()
        tape.backward(self.loss_arr)
        return loss


def main_mpi(args) -> dict:
    """``mpiexec -n N difsci run wave``: the optimisation of ``main`` on N ranks."""
    size = getattr(args, "size", None) or "default"
    iters = getattr(args, "iters", None) or (10 if size == "small" else 40)
    sim = DistributedWave(size)
    grid = sim.grid
    print(f"wave over MPI: {sim.n}x{sim.m} grid in {grid.size} slabs of ~{sim.n // grid.size} rows, "
          f"{sim.T} steps, {iters} iterations")
    t0 = time.perf_counter()
    sim.forward_backward()
    print(f"first forward + backward, incl. compile: {time.perf_counter() - t0:.2f} s")
    losses = optimise(sim, iters)
    final = sim.forward()
    print(f"final loss {final:.3e} (from {losses[0]:.3e})")
    h0 = grid.gather(sim.h0)
    hT = grid.gather(sim.h[sim.T])
    if getattr(args, "plot", None) and grid.rank == 0:
        plot(args.plot, losses + [final], h0, hT, target_pattern(sim.n, sim.m))
    if getattr(args, "gif", None):
        h = grid.gather(sim.h, axis=1)
        if grid.rank == 0:
            animate(args.gif, h)
    return {"losses": losses + [final]}


def optimise(sim: Wave, iters: int):
    """Gradient descent with momentum on h0; prints one line per iteration.

    The problem is linear least squares; the loss is a mean over n^2 cells, so
    a step of n^2 is a unit step on the summed misfit.
    """
    opt = ds.nn.SGD([sim.h0], lr=1.0 * sim.n ** 2, momentum=0.8)
    losses = []
    for it in range(1, iters + 1):
        t0 = time.perf_counter()
        losses.append(sim.forward_backward())
        opt.step()
        print(f"iter {it}/{iters}  loss {losses[-1]:.3e}  ({time.perf_counter() - t0:.2f} s)")
    return losses


def main(args: argparse.Namespace | None = None) -> dict:
    size = getattr(args, "size", None) or "default"
    iters = getattr(args, "iters", None) or (10 if size == "small" else 40)
    sim = Wave(size)
    print(f"wave: {sim.n}x{sim.n} grid, {sim.T} steps, {iters} iterations")
    t0 = time.perf_counter()
    sim.forward_backward()                        # compiles (cached on disk afterwards)
    print(f"first forward + backward, incl. compile: {time.perf_counter() - t0:.2f} s")
    losses = optimise(sim, iters)
    final = sim.forward()
    print(f"final loss {final:.3e} (from {losses[0]:.3e})")
    h = np.array(sim.h.numpy())
    if getattr(args, "plot", None):
        plot(args.plot, losses + [final], sim.h0.numpy(), h[-1], sim.target.numpy())
    if getattr(args, "gif", None):
        animate(args.gif, h)
    return {"losses": losses + [final]}


def plot(path, losses, h0, hT, target):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 4, figsize=(17, 4))
    ax[0].semilogy(losses, marker=".")
    ax[0].set(xlabel="iteration", ylabel="loss", title="loss")
    v = np.abs(h0).max()
    for a, img, title, kw in ((ax[1], h0, "optimised h(0)", {"cmap": "RdBu_r", "vmin": -v, "vmax": v}),
                              (ax[2], hT, "h(T)", {"vmin": 0.0, "vmax": 1.0}),
                              (ax[3], target, "target", {"vmin": 0.0, "vmax": 1.0})):
        im = a.imshow(img.T, origin="lower", **kw)
        a.set_title(title)
        a.axis("off")
        fig.colorbar(im, ax=a, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"saved {path}")


def animate(path, h):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter
    fig, ax = plt.subplots(figsize=(4, 4))
    vmax = np.abs(h[-1]).max()
    im = ax.imshow(h[0].T, origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.axis("off")
    frames = range(0, h.shape[0], max(1, h.shape[0] // 60))
    anim = FuncAnimation(fig, lambda k: (im.set_data(h[k].T), ax.set_title(f"t = {k}")), frames=frames)
    anim.save(path, writer=PillowWriter(fps=15))
    plt.close(fig)
    print(f"saved {path}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--plot", default=None)
    p.add_argument("--gif", default=None)
    p.add_argument("--backend", choices=("cpu", "cuda", "python"), default=None)
    p.add_argument("--size", choices=("small", "default"), default="default")
    a = p.parse_args()
    if a.backend:
        ds.init(backend=a.backend)
    main(a)
