"""a physics-informed network for viscous Burgers (Raissi et al. 2019), checked against Cole–Hopf

    u_t + u u_x = (0.01/π) u_xx on x ∈ [-1, 1], t ∈ [0, 1];  u(0, x) = -sin(πx), u(t, ±1) = 0.

8 hidden layers of 20 tanh units; Adam, then L-BFGS.  The exact solution comes
from the Cole–Hopf transform, its integrals evaluated by Gauss–Hermite quadrature.

    difsci run burgers_pinn --plot burgers.png            (long: Raissi's 10,000 points; here
                                                           14 min, relative L2 error 1.1e-3)
    difsci run burgers_pinn --size small --plot b.png     (a quick look)
    mpiexec -n 2 difsci run burgers_pinn --size small     (data parallel: collocation points split over 2 ranks)
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import sympy as sp

import difsci as ds

NU = 0.01 / np.pi


def exact(t, x, nu=NU, n_nodes=160):
    """Cole–Hopf: u = -∫ sin(π(x-η)) f(x-η) e^{-η²/4νt} dη / ∫ f(x-η) e^{-η²/4νt} dη, f = e^{-cos(π·)/2πν}."""
    t, x = np.broadcast_arrays(np.asarray(t, float), np.asarray(x, float))
    z, w = np.polynomial.hermite.hermgauss(n_nodes)
    c = np.sqrt(4 * nu * np.maximum(t, 1e-300))[..., None]
    y = x[..., None] - c * z
    logf = -np.cos(np.pi * y) / (2 * np.pi * nu)
    logf -= logf.max(axis=-1, keepdims=True)          # keep the exponentials finite
    f = w * np.exp(logf)
    u = -(np.sin(np.pi * y) * f).sum(-1) / f.sum(-1)
    return np.where(t > 0, u, -np.sin(np.pi * x))


def build(size="default", seed=0, dtype=np.float64):
    t, x = sp.symbols("t x")
    u = sp.Function("u")
    nu = sp.Rational(1, 100) / sp.pi
    depth, n_col, n_cond = (4, 1000, 100) if size == "small" else (8, 10000, 100)
    net = ds.nn.MLP([2] + [20] * depth + [1], activation="tanh", seed=seed, dtype=dtype)
    pinn = ds.nn.PINN(net, inputs=(t, x), outputs=(u,),
                      equations=[u(t, x).diff(t) + u(t, x) * u(t, x).diff(x) - nu * u(t, x).diff(x, 2)])
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-1, 1, n_cond)
    pinn.add_condition(np.stack([0 * x0, x0], 1), -np.sin(np.pi * x0), output=u)        # initial
    tb = rng.uniform(0, 1, n_cond)
    side = np.where(rng.random(n_cond) < 0.5, -1.0, 1.0)
    pinn.add_condition(np.stack([tb, side], 1), np.zeros(n_cond), output=u)            # boundary
    colloc = ds.nn.box_samples([0, -1], [1, 1], n_col, "lhs", seed=seed)
    return pinn, colloc


def grid(nt=101, nx=256):
    T, X = np.meshgrid(np.linspace(0, 1, nt), np.linspace(-1, 1, nx), indexing="ij")
    return T, X


def rel_l2(pinn):
    T, X = grid()
    pred = pinn.predict(np.stack([T.ravel(), X.ravel()], 1))[:, 0]
    ref = exact(T.ravel(), X.ravel())
    return float(np.linalg.norm(pred - ref) / np.linalg.norm(ref))


def plot(pinn, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    T, X = grid()
    pred = pinn.predict(np.stack([T.ravel(), X.ravel()], 1))[:, 0].reshape(T.shape)
    ref = exact(T, X)
    fig, ax = plt.subplots(1, 4, figsize=(18, 3.8))
    for a, data, title in ((ax[0], pred, "PINN u(t, x)"), (ax[1], ref, "exact (Cole–Hopf)"),
                           (ax[2], np.abs(pred - ref), "|error|")):
        im = a.pcolormesh(T, X, data, shading="auto", cmap="RdBu_r" if a is not ax[2] else "viridis")
        a.set_xlabel("t")
        a.set_ylabel("x")
        a.set_title(title)
        fig.colorbar(im, ax=a)
    for k, tt in enumerate((0.25, 0.5, 0.75)):
        i = int(round(tt * (T.shape[0] - 1)))
        ax[3].plot(X[i], ref[i], "k-", lw=1, label="exact" if k == 0 else None)
        ax[3].plot(X[i], pred[i], "--", label=f"PINN t={tt}")
    ax[3].legend(fontsize=7)
    ax[3].set_title("slices")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"saved {path}")


def main(args, distributed=False):
    size = getattr(args, "size", None) or "default"
    iters = getattr(args, "iters", None)
    adam = iters if iters is not None else (500 if size == "small" else 1000)
    lbfgs = 500 if size == "small" else 4000
    pinn, colloc = build(size)
    t0 = time.perf_counter()
    pinn.train(colloc, steps=adam, lr=1e-3, lbfgs_steps=lbfgs, distributed=distributed)
    err = rel_l2(pinn)
    print(f"relative L2 error vs Cole–Hopf {err:.2e}  ({time.perf_counter() - t0:.1f} s of training)")
    if getattr(args, "plot", None):
        plot(pinn, args.plot)
    return {"rel_l2": err, "loss": pinn.history["loss"]}


def main_mpi(args):
    """``mpiexec -n N difsci run burgers_pinn``: the same training, data parallel over N ranks."""
    return main(args, distributed=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int)
    ap.add_argument("--size", choices=["small", "default"], default="default")
    ap.add_argument("--plot")
    main(ap.parse_args())
