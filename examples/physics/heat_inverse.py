"""2-D heat equation inverse problem: recover the conductivity field from noisy temperatures with L-BFGS

A plate with an unknown, spatially varying conductivity k(x, y) cools from a
known initial temperature (edges held at 0):  u_t = div(k grad u).  We observe
the temperature everywhere at six times, with noise of standard deviation
0.01 (the initial peak is 1.6), and recover k by minimising

    J(m) = 1/2 mean((u_obs - u(m))^2) / sigma^2  +  beta/2 |grad m|^2,   k = exp(m)

(the log keeps k positive; the smoothness term regularises the ill-posed
problem).  The explicit finite-volume scheme runs all time steps in ONE kernel
launch; reverse mode gives dJ/dm for all n^2 cells at once, and L-BFGS
(``ds.nn.LBFGS``) does the rest.  The plot puts the recovered field beside
the truth.

    difsci run heat_inverse --plot heat_inverse.png
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import difsci as ds

DT = 0.08           # explicit scheme: stable while 4 k dt <= 1 (grid spacing 1)
NOISE = 0.01        # standard deviation of the observation noise


@ds.kernel
def conductivity(m: ds.f64[:, :], k: ds.f64[:, :]):
    """k = exp(m) cell by cell."""
    for i, j in ds.ndrange(m.shape[0], m.shape[1]):
        k[i, j] = ds.exp(m[i, j])


@ds.kernel
def simulate(k: ds.f64[:, :], u: ds.f64[:, :, :], dt: float):
    """u[t + 1] = u[t] + dt div(k grad u[t]) for every t; u[0] is given, the edges stay at 0.

    Finite volumes: the conductivity of the face between two cells is the mean
    of theirs.  k: (n, n); u: (T + 1, n, n).
    """
    n = u.shape[1]
    for t in ds.serial(range(u.shape[0] - 1)):
        for i, j in ds.ndrange((1, n - 1), (1, n - 1)):
            c = u[t, i, j]
            flux = (0.5 * (k[i, j] + k[i + 1, j]) * (u[t, i + 1, j] - c)
                    + 0.5 * (k[i, j] + k[i - 1, j]) * (u[t, i - 1, j] - c)
                    + 0.5 * (k[i, j] + k[i, j + 1]) * (u[t, i, j + 1] - c)
                    + 0.5 * (k[i, j] + k[i, j - 1]) * (u[t, i, j - 1] - c))
            u[t + 1, i, j] = c + dt * flux


@ds.kernel
def misfit(u: ds.f64[:, :, :], steps: ds.i64[:], obs: ds.f64[:, :, :], weight: float, loss: ds.f64[()]):
    """loss += weight/2 * sum_s sum_ij (u[steps[s], i, j] - obs[s, i, j])^2."""
    n = u.shape[1]
    for s, i, j in ds.ndrange(steps.shape[0], n, n):
        loss[None] += 0.5 * weight * (u[steps[s], i, j] - obs[s, i, j]) ** 2


@ds.kernel
def smoothness(m: ds.f64[:, :], beta: float, loss: ds.f64[()]):
    """loss += beta/2 * sum over neighbouring cells of (m_a - m_b)^2."""
    n = m.shape[0]
    for i, j in ds.ndrange(n - 1, n - 1):
        loss[None] += 0.5 * beta * ((m[i + 1, j] - m[i, j]) ** 2 + (m[i, j + 1] - m[i, j]) ** 2)


def true_conductivity(n: int) -> np.ndarray:
    """Background 1, a good conductor (a disc, k = 3) and an insulator (a square, k = 0.3)."""
    x, y = np.mgrid[0:n, 0:n] / (n - 1.0)      # k[i, j] at (x_i, y_j)
    k = np.ones((n, n))
    k[np.hypot(x - 0.33, y - 0.62) < 0.17] = 3.0
    k[(np.abs(x - 0.68) < 0.13) & (np.abs(y - 0.35) < 0.13)] = 0.3
    return k


def initial_temperature(n: int) -> np.ndarray:
    """A known smooth pattern of hot and cold spots, 0 on the edges."""
    x, y = np.mgrid[0:n, 0:n] / (n - 1.0)      # k[i, j] at (x_i, y_j)
    return np.sin(np.pi * x) * np.sin(np.pi * y) * (1.0 + 0.6 * np.cos(3 * np.pi * x) * np.cos(3 * np.pi * y))


class HeatInverse:
    """Forward model, synthetic noisy data and the objective J(m) with its gradient."""

    def __init__(self, size: str = "default", beta: float | None = None, seed: int = 0):
        self.n, self.T = (16, 60) if size == "small" else (48, 400)
        n, T = self.n, self.T
        self.steps = ds.array(np.arange(1, 7, dtype=np.int64) * T // 6)     # six snapshots
        self.beta = 0.03 if beta is None else beta
        self.m = ds.zeros((n, n), requires_grad=True)          # unknown: log conductivity, start at k = 1
        self.k = ds.zeros((n, n), requires_grad=True)
        self.u = ds.zeros((T + 1, n, n), requires_grad=True)
        self.u.numpy()[0] = initial_temperature(n)
        self.loss_arr = ds.zeros((), requires_grad=True)
        # synthetic observations: the true model's temperatures plus noise
        self.k_true = true_conductivity(n)
        conductivity(ds.array(np.log(self.k_true)), self.k)
        simulate(self.k, self.u, DT)
        rng = np.random.default_rng(seed)
        clean = self.u.numpy()[self.steps.numpy()]
        self.obs = ds.array(clean + NOISE * rng.standard_normal(clean.shape))
        self.weight = 1.0 / (NOISE ** 2 * clean.size)           # J's misfit is 1/2 at the noise level

    def forward(self) -> float:
        self.loss_arr.fill(0.0)
        conductivity(self.m, self.k)
        simulate(self.k, self.u, DT)
        misfit(self.u, self.steps, self.obs, self.weight, self.loss_arr)
        smoothness(self.m, self.beta, self.loss_arr)
        return float(self.loss_arr.numpy())

    def forward_backward(self) -> float:
        """J(m), with dJ/dm left in ``self.m.grad``."""
        with ds.Tape() as tape:
            loss = self.forward()
        tape.zero_grads()
        tape.backward(self.loss_arr)
        return loss

    def loss_and_grad(self, x: np.ndarray):
        self.m.numpy()[...] = x.reshape(self.m.shape)
        return self.forward_backward(), np.array(self.m.grad.numpy()).ravel()

    def x0(self) -> np.ndarray:
        return np.zeros(self.n * self.n)


def main(args: argparse.Namespace | None = None) -> dict:
    size = getattr(args, "size", None) or "default"
    iters = getattr(args, "iters", None) or (8 if size == "small" else 30)
    prob = HeatInverse(size)
    print(f"heat_inverse: {prob.n}x{prob.n} unknowns, {prob.T} steps, {len(prob.steps.numpy())} noisy snapshots")
    t0 = time.perf_counter()
    loss0 = prob.forward_backward()                       # compiles (cached on disk afterwards)
    print(f"first forward + backward, incl. compile: {time.perf_counter() - t0:.2f} s; loss {loss0:.3e}")

    opt = ds.nn.LBFGS([prob.m], history_size=20)          # one L-BFGS iteration (with line search) per step
    losses = [loss0]
    for it in range(1, iters + 1):
        t0 = time.perf_counter()
        losses.append(opt.step(prob.forward_backward))     # J after this iteration
        print(f"iter {it}/{iters}  loss {losses[-1]:.3e}  ({time.perf_counter() - t0:.2f} s)")
    final = prob.forward()
    k = np.exp(prob.m.numpy())
    inner = (slice(1, -1), slice(1, -1))
    err = np.linalg.norm(np.log(k[inner] / prob.k_true[inner])) / np.linalg.norm(np.log(prob.k_true[inner]))
    print(f"final loss {final:.3e} (from {losses[0]:.3e}); relative error of log k: {err:.2f}")
    if getattr(args, "plot", None):
        plot(args.plot, losses, prob.k_true, k)
    if getattr(args, "gif", None):
        animate(args.gif, np.array(prob.u.numpy()))
    return {"losses": losses, "log_k_error": err}


def plot(path, losses, k_true, k):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    ax[0].semilogy(losses, marker=".")
    ax[0].set(xlabel="L-BFGS iteration", ylabel="J", title="objective")
    norm = LogNorm(vmin=0.25, vmax=4.0)
    for a, img, title in ((ax[1], k_true, "true conductivity"), (ax[2], k, "recovered conductivity")):
        im = a.imshow(img.T, origin="lower", cmap="coolwarm", norm=norm)
        a.set_title(title)
        a.axis("off")
    fig.colorbar(im, ax=ax[1:], shrink=0.8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"saved {path}")


def animate(path, u):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter
    fig, ax = plt.subplots(figsize=(4, 4))
    im = ax.imshow(u[0].T, origin="lower", cmap="inferno", vmin=0.0, vmax=u[0].max())
    ax.axis("off")
    frames = range(0, u.shape[0], max(1, u.shape[0] // 50))
    anim = FuncAnimation(fig, lambda t: (im.set_data(u[t].T), ax.set_title(f"step {t}")), frames=frames)
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
