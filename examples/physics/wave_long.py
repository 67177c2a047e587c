"""Long 2-D wave simulation in bounded memory: ds.Rollout with 32 checkpoints instead of every step

The leapfrog wave equation of ``wave.py``, but run for thousands of steps. Keeping every step for
reverse mode (a time axis, as ``wave.py`` does) would need steps x state bytes -- 1.3 GB here, and
tens of GB at DiffTaichi-like sizes. ``ds.Rollout`` keeps 32 snapshots of the state and recomputes
the steps in between by the binomial schedule; the gradient is the same. We optimise the initial
displacement so that the field after the last step forms a target pattern.

    difsci run wave_long --plot wave_long.png
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import difsci as ds

COURANT2 = 0.25          # (c dt / dx)^2: Courant number 0.5, stable below 1/sqrt(2); no damping


@ds.kernel
def leapfrog(hp: ds.f64[:, :], h: ds.f64[:, :], hp_next: ds.f64[:, :], h_next: ds.f64[:, :], c2: float):
    """(h[t-1], h[t]) -> (h[t], h[t+1]) on an n x n grid with the edges held at zero."""
    n, m = h.shape[0], h.shape[1]
    for i, j in ds.ndrange(n, m):
        hp_next[i, j] = h[i, j]
        if 0 < i < n - 1 and 0 < j < m - 1:
            lap = h[i + 1, j] + h[i - 1, j] + h[i, j + 1] + h[i, j - 1] - 4.0 * h[i, j]
            h_next[i, j] = 2.0 * h[i, j] - hp[i, j] + c2 * lap
        else:
            h_next[i, j] = 0.0


@ds.kernel
def mismatch(h: ds.f64[:, :], target: ds.f64[:, :], loss: ds.f64[()]):
    """loss = mean over the grid of (h - target)^2."""
    n, m = h.shape[0], h.shape[1]
    scale = 1.0 / (n * m)
    for i, j in ds.ndrange(n, m):
        loss[None] += scale * (h[i, j] - target[i, j]) ** 2


def target_pattern(n: int) -> np.ndarray:
    """Two soft rings (values 0..1)."""
    x, y = np.mgrid[0:n, 0:n] / (n - 1.0)
    r1, r2 = np.hypot(x - 0.35, y - 0.5), np.hypot(x - 0.68, y - 0.5)
    return np.maximum(np.exp(-((r1 - 0.15) / 0.03) ** 2), np.exp(-((r2 - 0.12) / 0.03) ** 2))


class WaveLong:
    """The simulation and its gradient: ``forward_backward()`` returns the loss and fills ``grad``."""

    def __init__(self, size: str = "default", checkpoints: int | None = 32):
        self.n, self.T = (24, 300) if size == "small" else (128, 5000)
        self.checkpoints = checkpoints if size != "small" else min(8, checkpoints or 8)
        n = self.n
        self.h0 = np.zeros((n, n))
        self.target = ds.array(target_pattern(n))
        self.hp = ds.zeros((n, n), requires_grad=True)      # the state at t = 0: at rest, h[-1] = h[0] = h0
        self.h = ds.zeros((n, n), requires_grad=True)
        self.loss = ds.zeros((), requires_grad=True)
        self.sim = ds.Rollout(self.step, state=[self.hp, self.h], steps=self.T, checkpoints=self.checkpoints)

    def step(self, t, hp, h, hp_next, h_next):
        leapfrog(hp, h, hp_next, h_next, COURANT2)

    def forward_backward(self) -> float:
        self.hp.numpy()[...] = self.h0
        self.h.numpy()[...] = self.h0
        self.loss.fill(0.0)
        self.hp.zero_grad(), self.h.zero_grad()
        with ds.Tape() as tape:
            self.sim.run()
            mismatch(self.sim.state[1], self.target, self.loss)
        tape.backward(self.loss)
        self.grad = self.hp.grad.numpy() + self.h.grad.numpy()     # both state entries start as h0
        return float(self.loss.numpy())


def main(args: argparse.Namespace | None = None) -> dict:
    size = getattr(args, "size", None) or "default"
    iters = getattr(args, "iters", None) or (8 if size == "small" else 30)
    w = WaveLong(size)
    mib = 2.0 ** -20
    print(f"wave_long: {w.n}x{w.n} grid, {w.T} steps, {w.checkpoints} checkpoints, {iters} iterations\n"
          f"  snapshots: at most {w.checkpoints} x {w.sim.state_bytes * mib:.2f} MiB; storing every step "
          f"would take {w.T * w.sim.state_bytes * mib:.0f} MiB")
    # the problem is linear least squares: conjugate gradient on the normal equations is exact in
    # exact arithmetic; plain gradient descent with momentum is enough to show the loss fall
    lr, mom, vel = 0.5 * w.n ** 2, 0.7, np.zeros_like(w.h0)
    losses = []
    for it in range(1, iters + 1):
        t0 = time.perf_counter()
        losses.append(w.forward_backward())
        vel = mom * vel - lr * w.grad
        w.h0 += vel
        st = w.sim.stats
        print(f"iter {it}/{iters}  loss {losses[-1]:.3e}  ({time.perf_counter() - t0:.2f} s; "
              f"{st['forward_steps']} forward steps for {st['adjoint_steps']} adjoint steps)", flush=True)
    final = w.forward_backward()
    print(f"final loss {final:.3e} (from {losses[0]:.3e})")
    if getattr(args, "plot", None):
        plot(args.plot, losses + [final], w.h0, w.sim.state[1].numpy(), w.target.numpy(), w)
    return {"losses": losses + [final], "stats": dict(w.sim.stats)}


def plot(path, losses, h0, hT, target, w):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 4, figsize=(17, 4))
    ax[0].semilogy(losses, marker=".")
    ax[0].set(xlabel="iteration", ylabel="loss", title=f"loss ({w.T} steps, {w.checkpoints} checkpoints)")
    v = np.abs(h0).max() or 1.0
    for a, img, title, kw in ((ax[1], h0, "optimised h(0)", {"cmap": "RdBu_r", "vmin": -v, "vmax": v}),
                              (ax[2], hT, f"h(T), T = {w.T}", {"vmin": 0.0, "vmax": 1.0}),
                              (ax[3], target, "target", {"vmin": 0.0, "vmax": 1.0})):
        im = a.imshow(img.T, origin="lower", **kw)
        a.set_title(title)
        a.axis("off")
        fig.colorbar(im, ax=a, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"saved {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int)
    ap.add_argument("--size", choices=("small", "default"), default="default")
    ap.add_argument("--plot")
    main(ap.parse_args())
