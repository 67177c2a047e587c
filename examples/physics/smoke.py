"""2-D incompressible smoke (advection + Jacobi pressure projection): optimise the initial velocity to draw a target image

A puff of smoke sits in the middle of a periodic box.  Each time step
advects the velocity and the smoke density semi-Lagrangianly, then projects
the velocity onto divergence-free fields: K Jacobi sweeps for the pressure
(lap p = div v) and v <- v - grad p.  We optimise the initial velocity field
so that the density at the final step matches a target image (a "C") --
DiffTaichi's ``smoke`` example, written in difsci.  The initial velocity is
the curl of a stream function psi (n^2 numbers, the parameters), so it is
divergence-free: otherwise the optimiser finds that a strongly converging
flow simply makes the smoke disappear (semi-Lagrangian advection does not
conserve mass).

The step is assembled from the kernels of ``difsci.kernels`` (semi-Lagrangian
advection, central-difference divergence and gradient, a Jacobi solve that is
one launch for all K sweeps); every intermediate field lives in its own slot
of a time axis, so the Tape can run the adjoints of all launches backwards.

    difsci run smoke --plot smoke.png --gif smoke.gif
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import difsci as ds
import difsci.kernels as dk

DT = 1.0             # grid units: spacing 1, velocities in cells per step
BC = dk.PERIODIC


@ds.kernel
def velocity_from_stream(psi: ds.f64[:, :], v: ds.vec2[:, :]):
    """v = (d psi/dy, -d psi/dx) by central differences on the periodic grid: exactly divergence-free."""
    nx, ny = psi.shape[0], psi.shape[1]
    for i, j in ds.ndrange(nx, ny):
        v[i, j] = 0.5 * ds.vec2(psi[i, (j + 1) % ny] - psi[i, (j - 1 + ny) % ny],
                                psi[(i - 1 + nx) % nx, j] - psi[(i + 1) % nx, j])


@ds.kernel
def subtract_gradient(v: ds.vec2[:, :], grad_p: ds.vec2[:, :], out: ds.vec2[:, :]):
    """out = v - grad p (the projection's last step; not in difsci.kernels)."""
    for i, j in ds.ndrange(v.shape[0], v.shape[1]):
        out[i, j] = v[i, j] - grad_p[i, j]


@ds.kernel
def mismatch(d: ds.f64[:, :], target: ds.f64[:, :], loss: ds.f64[()]):
    """loss = mean over the grid of (d - target)^2."""
    n = d.shape[0] * d.shape[1]
    for i, j in ds.ndrange(d.shape[0], d.shape[1]):
        loss[None] += (d[i, j] - target[i, j]) ** 2 / n


def images(n: int):
    """Initial density (a disc) and the target (a "C": an incompressible flow cannot punch a hole)."""
    x, y = np.mgrid[0:n, 0:n] / n
    r = np.hypot(x - 0.5, y - 0.5)
    start = 1.0 / (1.0 + np.exp((r - 0.15) / 0.015))
    angle = np.arctan2(y - 0.5, x - 0.5)
    target = np.exp(-((r - 0.25) / 0.05) ** 2) / (1.0 + np.exp((np.abs(angle) - 2.4) / 0.1))
    return start, target * start.sum() / target.sum()          # the same amount of smoke


class Smoke:
    """The fluid's history on a time axis; the parameter is the stream function ``self.psi`` of vel[0]."""

    def __init__(self, size: str = "default"):
        self.n, self.T, self.K = (16, 8, 6) if size == "small" else (64, 40, 12)
        n, T, K = self.n, self.T, self.K
        start, target = images(n)
        self.target = ds.array(target)
        self.density = ds.zeros((T + 1, n, n), requires_grad=True)
        self.density.numpy()[0] = start
        self.vel = ds.zeros((T + 1, n, n), dtype=ds.vec2, requires_grad=True)
        self.psi = ds.zeros((n, n), requires_grad=True)
        self.vel_adv = ds.zeros((T, n, n), dtype=ds.vec2, requires_grad=True)
        self.div = ds.zeros((T, n, n), requires_grad=True)
        self.p = ds.zeros((T, K + 1, n, n), requires_grad=True)   # Jacobi iterates, p[t, 0] = 0
        self.grad_p = ds.zeros((T, n, n), dtype=ds.vec2, requires_grad=True)
        self.loss_arr = ds.zeros((), requires_grad=True)

    def step(self, t: int):
        """One time step: vel[t], density[t] -> vel[t + 1], density[t + 1] (six launches)."""
        dk.semi_lagrangian2d(self.vel[t], self.vel[t], self.vel_adv[t], DT, 1.0, BC)
        dk.semi_lagrangian2d(self.density[t], self.vel[t], self.density[t + 1], DT, 1.0, BC)
        dk.divergence2d(self.vel_adv[t], self.div[t], 1.0, BC, 0.0)
        dk.jacobi2d(self.p[t], self.div[t], 1.0, BC, 0.0)          # K sweeps in one launch
        dk.gradient2d(self.p[t, self.K], self.grad_p[t], 1.0, BC, 0.0)
        subtract_gradient(self.vel_adv[t], self.grad_p[t], self.vel[t + 1])

    def forward(self) -> float:
        self.loss_arr.fill(0.0)
        velocity_from_stream(self.psi, self.vel[0])
        for t in range(self.T):
            self.step(t)
        mismatch(self.density[self.T], self.target, self.loss_arr)
        return float(self.loss_arr.numpy())

    def forward_backward(self) -> float:
        """The loss, with d loss / d psi left in ``self.psi.grad``."""
        with ds.Tape() as tape:
            loss = self.forward()
        tape.zero_grads()
        tape.backward(self.loss_arr)
        return loss

    def loss_and_grad(self, x: np.ndarray):
        self.psi.numpy()[...] = x.reshape(self.n, self.n)
        return self.forward_backward(), np.array(self.psi.grad.numpy()).ravel()

    def x0(self) -> np.ndarray:
        return np.zeros(self.n * self.n)


def main(args: argparse.Namespace | None = None) -> dict:
    size = getattr(args, "size", None) or "default"
    iters = getattr(args, "iters", None) or (5 if size == "small" else 60)
    sim = Smoke(size)
    print(f"smoke: {sim.n}x{sim.n} grid, {sim.T} steps, {sim.K} Jacobi sweeps per step, {iters} iterations")
    t0 = time.perf_counter()
    sim.forward_backward()                                # compiles (cached on disk afterwards)
    print(f"first forward + backward, incl. compile: {time.perf_counter() - t0:.2f} s")
    opt = ds.nn.Adam([sim.psi], lr=0.2)
    losses = []
    for it in range(1, iters + 1):
        t0 = time.perf_counter()
        losses.append(sim.forward_backward())
        opt.step()
        print(f"iter {it}/{iters}  loss {losses[-1]:.3e}  ({time.perf_counter() - t0:.2f} s)")
    losses.append(sim.forward())
    print(f"final loss {losses[-1]:.3e} (from {losses[0]:.3e})")
    d = np.array(sim.density.numpy())
    if getattr(args, "plot", None):
        plot(args.plot, losses, d, sim.target.numpy(), sim.vel.numpy()[0])
    if getattr(args, "gif", None):
        animate(args.gif, d)
    return {"losses": losses}


def plot(path, losses, d, target, v0):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 4, figsize=(17, 4))
    ax[0].semilogy(losses, marker=".")
    ax[0].set(xlabel="iteration", ylabel="loss", title="loss")
    vmax = max(d[0].max(), target.max())
    ax[1].imshow(d[0].T, origin="lower", cmap="magma", vmin=0, vmax=vmax)
    n = v0.shape[0]
    s = max(1, n // 16)
    gx, gy = np.mgrid[0:n:s, 0:n:s]
    ax[1].quiver(gx, gy, v0[::s, ::s, 0], v0[::s, ::s, 1], color="c")
    ax[1].set_title("density and optimised velocity at t = 0")
    ax[2].imshow(d[-1].T, origin="lower", cmap="magma", vmin=0, vmax=vmax)
    ax[2].set_title("density at T")
    ax[3].imshow(target.T, origin="lower", cmap="magma", vmin=0, vmax=vmax)
    ax[3].set_title("target")
    for a in ax[1:]:
        a.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"saved {path}")


def animate(path, d):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter
    fig, ax = plt.subplots(figsize=(4, 4))
    im = ax.imshow(d[0].T, origin="lower", cmap="magma", vmin=0, vmax=d.max())
    ax.axis("off")
    anim = FuncAnimation(fig, lambda t: (im.set_data(d[t].T), ax.set_title(f"step {t}")), frames=range(len(d)))
    anim.save(path, writer=PillowWriter(fps=10))
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
