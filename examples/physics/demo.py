"""a tiny demo: gradient of a 1-D heat step, checked against finite differences

An explicit 1-D heat equation runs for T time steps inside ONE kernel launch
(a ``ds.serial`` time loop around parallel space loops). Reverse mode gives
the gradient of a squared misfit to a target profile with respect to the
initial condition; we check it against a central finite difference along a
random direction, then recover the initial condition by gradient descent.

    difsci run demo --plot demo.png
    python examples/physics/demo.py --iters 50
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import difsci as ds


@ds.kernel
def heat(u: ds.f64[:, :], alpha: float):
    """u[t + 1] = one explicit heat step of u[t], for every t (boundaries held fixed)."""
    T = u.shape[0] - 1
    n = u.shape[1]
    for t in ds.serial(range(T)):
        for i in range(1, n - 1):
            u[t + 1, i] = u[t, i] + alpha * (u[t, i - 1] - 2.0 * u[t, i] + u[t, i + 1])
        for k in range(2):
            j = k * (n - 1)
            u[t + 1, j] = u[t, j]


@ds.kernel
def sq_error(u: ds.f64[:, :], target: ds.f64[:], loss: ds.f64[()]):
    """loss += sum_i (u[T, i] - target[i])**2 for the last time row T."""
    T = u.shape[0] - 1
    n = u.shape[1]
    for i in range(n):
        loss[None] += (u[T, i] - target[i]) ** 2


def sizes(size: str) -> tuple[int, int]:
    """(number of grid points n, number of time steps T) for a problem size."""
    return (32, 40) if size == "small" else (64, 200)


def evaluate(u0: np.ndarray, target: np.ndarray, T: int, alpha: float,
             grad: bool = False) -> tuple[float, np.ndarray | None, np.ndarray]:
    """Run the simulation from u0; return (loss, d loss / d u0 or None, history u)."""
    u_np = np.zeros((T + 1, u0.shape[0]))
    u_np[0] = u0
    u = ds.array(u_np, requires_grad=grad)
    loss = ds.zeros((), requires_grad=grad)
    tgt = ds.array(target)
    if grad:
        with ds.Tape() as tape:
            heat(u, alpha)
            sq_error(u, tgt, loss)
        tape.backward(loss)
        g = np.array(u.grad.numpy()[0])
    else:
        heat(u, alpha)
        sq_error(u, tgt, loss)
        g = None
    return float(np.asarray(loss.numpy())), g, np.array(u.numpy())


def main(args: argparse.Namespace | None = None) -> dict:
    """Gradient check, then gradient descent on the initial condition."""
    iters = getattr(args, "iters", None) or 20
    n, T = sizes(getattr(args, "size", None) or "default")
    alpha = 0.2  # explicit scheme is stable for alpha <= 0.5
    x = np.linspace(0.0, 1.0, n)

    # The target is what a hidden initial condition looks like after T steps.
    u0_true = np.exp(-((x - 0.3) / 0.08) ** 2) + 0.5 * np.exp(-((x - 0.7) / 0.05) ** 2)
    _, _, hist_true = evaluate(u0_true, np.zeros(n), T, alpha)
    target = hist_true[T].copy()

    # 1. Gradient vs central finite difference along a random direction.
    rng = np.random.default_rng(0)
    u0 = 0.5 * np.sin(np.pi * x) ** 2
    t0 = time.perf_counter()
    loss0, g, _ = evaluate(u0, target, T, alpha, grad=True)
    print(f"n = {n}, T = {T} steps; loss {loss0:.6e}  (first call, incl. compile: "
          f"{time.perf_counter() - t0:.2f} s)")
    d = rng.standard_normal(n)
    eps = 1e-6
    lp, _, _ = evaluate(u0 + eps * d, target, T, alpha)
    lm, _, _ = evaluate(u0 - eps * d, target, T, alpha)
    fd = (lp - lm) / (2 * eps)
    ad = float(g @ d)
    rel = abs(ad - fd) / max(abs(ad), abs(fd), 1e-300)
    print(f"directional derivative: reverse mode {ad:.10e}  finite difference {fd:.10e}  "
          f"relative difference {rel:.2e}")

    # 2. Gradient descent on the initial condition.
    lr = 0.1  # below 2 / (largest curvature) for both sizes
    losses = []
    u = u0.copy()
    for it in range(1, iters + 1):
        t0 = time.perf_counter()
        loss, g, hist = evaluate(u, target, T, alpha, grad=True)
        u -= lr * g
        losses.append(loss)
        print(f"iter {it}/{iters}  loss {loss:.3e}  ({time.perf_counter() - t0:.2f} s)")
    final_loss, _, hist = evaluate(u, target, T, alpha)
    losses.append(final_loss)
    print(f"final loss {final_loss:.3e} (from {loss0:.3e})")

    if getattr(args, "plot", None) or getattr(args, "gif", None):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    if getattr(args, "plot", None):
        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4))
        ax0.semilogy(losses, marker=".")
        ax0.set(xlabel="iteration", ylabel="loss", title="loss")
        ax1.plot(x, target, "k--", label="target u(T)")
        ax1.plot(x, hist[T], label="final u(T)")
        ax1.plot(x, u, alpha=0.6, label="recovered u(0)")
        ax1.plot(x, u0_true, ":", alpha=0.6, label="true u(0)")
        ax1.set(xlabel="x", title="profiles")
        ax1.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        plt.close(fig)
        print(f"saved {args.plot}")
    if getattr(args, "gif", None):
        from matplotlib.animation import FuncAnimation, PillowWriter
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(x, target, "k--", label="target")
        (line,) = ax.plot(x, hist[0], label="u(t)")
        ax.set(xlabel="x", ylim=(min(hist.min(), target.min()) - 0.05,
                                 max(hist.max(), target.max()) + 0.05))
        ax.legend()
        frames = range(0, T + 1, max(1, T // 50))
        anim = FuncAnimation(fig, lambda k: (line.set_ydata(hist[k]), ax.set_title(f"t = {k}")),
                             frames=frames)
        anim.save(args.gif, writer=PillowWriter(fps=15))
        plt.close(fig)
        print(f"saved {args.gif}")
    return {"losses": losses, "grad_rel_diff": rel}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--plot", default=None)
    p.add_argument("--gif", default=None)
    p.add_argument("--backend", choices=("cpu", "cuda", "python"), default=None)
    p.add_argument("--size", choices=("small", "default"), default="default")
    a = p.parse_args()
    if a.backend:
        ds.init(backend=a.backend)
    main(a)
