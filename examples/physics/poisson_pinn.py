"""a physics-informed network solving the 2-D Poisson equation (exact solution sin πx sin πy)

    -(u_xx + u_yy) = 2 π² sin(πx) sin(πy) on the unit square, u = 0 on its boundary.

The residual is written with sympy; difsci generates the residual kernel from it,
propagates u_xx and u_yy through the network as derivative streams (nested forward
mode of the activation) and gets the weight gradient by reverse mode through the
Tape.  Adam, then L-BFGS.

    difsci run poisson_pinn --plot poisson.png
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import sympy as sp

import difsci as ds


def exact(p):
    return np.sin(np.pi * p[:, 0]) * np.sin(np.pi * p[:, 1])


def build(size="default", seed=0, dtype=np.float64):
    x, y = sp.symbols("x y")
    u = sp.Function("u")
    width, n_col, n_bd = (16, 256, 32) if size == "small" else (32, 2000, 100)
    net = ds.nn.MLP([2, width, width, 1], activation="tanh", seed=seed, dtype=dtype)
    f = 2 * sp.pi ** 2 * sp.sin(sp.pi * x) * sp.sin(sp.pi * y)
    pinn = ds.nn.PINN(net, inputs=(x, y), outputs=(u,),
                      equations=[-(u(x, y).diff(x, 2) + u(x, y).diff(y, 2)) - f])
    s = np.linspace(0.0, 1.0, n_bd)
    z, o = np.zeros_like(s), np.ones_like(s)
    edges = np.concatenate([np.stack(e, 1) for e in ((s, z), (s, o), (z, s), (o, s))])
    pinn.add_condition(edges, np.zeros(len(edges)), output=u, weight=10.0)
    colloc = ds.nn.box_samples([0, 0], [1, 1], n_col, "lhs", seed=seed)
    return pinn, colloc


def rel_l2(pinn, n=4000, seed=7):
    p = ds.nn.box_samples([0, 0], [1, 1], n, seed=seed)
    pred = pinn.predict(p)[:, 0]
    ref = exact(p)
    return float(np.linalg.norm(pred - ref) / np.linalg.norm(ref))


def plot(pinn, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    g = np.linspace(0, 1, 81)
    X, Y = np.meshgrid(g, g)
    pts = np.stack([X.ravel(), Y.ravel()], 1)
    pred = pinn.predict(pts)[:, 0].reshape(X.shape)
    ref = exact(pts).reshape(X.shape)
    fig, ax = plt.subplots(1, 4, figsize=(17, 3.8))
    for a, data, title in ((ax[0], pred, "PINN u"), (ax[1], ref, "exact sin πx sin πy"),
                           (ax[2], np.abs(pred - ref), "|error|")):
        im = a.pcolormesh(X, Y, data, shading="auto")
        a.set_title(title)
        a.set_aspect("equal")
        fig.colorbar(im, ax=a)
    ax[3].semilogy(pinn.history["loss"])
    ax[3].set_title("loss")
    ax[3].set_xlabel("step (Adam, then L-BFGS)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"saved {path}")


def main(args):
    size = getattr(args, "size", None) or "default"
    iters = getattr(args, "iters", None)
    adam = iters if iters is not None else (200 if size == "small" else 2000)
    lbfgs = adam if size == "small" else 3000
    pinn, colloc = build(size)
    t0 = time.perf_counter()
    pinn.train(colloc, steps=adam, lr=5e-3, lbfgs_steps=lbfgs)
    err = rel_l2(pinn)
    print(f"relative L2 error {err:.2e}  ({time.perf_counter() - t0:.1f} s of training)")
    if getattr(args, "plot", None):
        plot(pinn, args.plot)
    return {"rel_l2": err, "loss": pinn.history["loss"]}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int)
    ap.add_argument("--size", choices=["small", "default"], default="default")
    ap.add_argument("--plot")
    main(ap.parse_args())
