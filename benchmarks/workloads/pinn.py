"""Workload 6: one Burgers PINN training step — difsci against PyTorch eager and JAX ``jit``.

The setting of examples/physics/burgers_pinn.py (Raissi et al. 2019):
residual u_t + u u_x - (0.01/π) u_xx at N collocation points in [0,1]×[-1,1],
plus 100 initial and 100 boundary points; MLP 2 → 8×20 tanh → 1.  A step is
the loss and its gradient with respect to all weights (difsci:
``pinn.loss_and_grad``: derivative streams through the dense layers, residual
kernel from sympy, reverse mode through the Tape); the second variant adds
the Adam update.  Every implementation starts from difsci's initial weights,
and their losses and gradients are checked against difsci's before timing.
There is no hand-written numba reference: the ratios are to difsci.  Peers
that are not installed (``pip install -e ".[bench]"``) are skipped.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

import difsci as ds

from ..harness import Case, assert_close

DEPTH, WIDTH = 8, 20
N_COND = 100
NU = 0.01 / np.pi
# (collocation point counts, dtypes)
SIZES = {"tiny": ((64,), ("float64",)), "quick": ((2000,), ("float32",)),
         "full": ((2000, 10000), ("float32", "float64"))}
LR = 1e-3


def problem(n_col: int, dtype, depth: int = DEPTH, seed: int = 0):
    """The difsci PINN, its collocation points and condition sets [(points (M, 2), values (M,))]."""
    t, x = sp.symbols("t x")
    u = sp.Function("u")
    net = ds.nn.MLP([2] + [WIDTH] * depth + [1], activation="tanh", seed=seed, dtype=dtype)
    pinn = ds.nn.PINN(net, inputs=(t, x), outputs=(u,),
                      equations=[u(t, x).diff(t) + u(t, x) * u(t, x).diff(x) - (sp.Rational(1, 100) / sp.pi)
                                 * u(t, x).diff(x, 2)])
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-1, 1, N_COND)
    tb = rng.uniform(0, 1, N_COND)
    side = np.where(rng.random(N_COND) < 0.5, -1.0, 1.0)
    conds = [(np.stack([0 * x0, x0], 1), -np.sin(np.pi * x0)), (np.stack([tb, side], 1), np.zeros(N_COND))]
    for p, v in conds:
        pinn.add_condition(p, v, output=u)
    colloc = ds.nn.box_samples([0, -1], [1, 1], n_col, "lhs", seed=seed).astype(dtype)
    return pinn, colloc, conds


def layers_of(net) -> list:
    """[(W (in, out), b (out,)), ...] copies of the network's weights (the flat layout of API.md §7)."""
    p = [a.numpy().copy() for a in net.parameters()]
    return list(zip(p[0::2], p[1::2]))


def _difsci_step(pinn, X, adam: bool):
    flat = pinn.net.flat_parameters()
    opt = ds.nn.Adam(flat, lr=LR) if adam else None

    def step():
        f, g = pinn.loss_and_grad(X)
        if opt is not None:
            opt.step()
        return f, g
    return step


def _cases_for(n_col: int, dtype: str, peers: dict, size: str) -> list[Case]:
    dt = np.dtype(dtype)
    rtol = 1e-9 if dt == np.float64 else 2e-3

    def verify(res):
        want = res["difsci"]
        assert np.max(np.abs(want[1])) > 0, "degenerate case: zero gradient"
        for k, got in res.items():
            assert_close(f"{k}: loss", got[0], want[0], rtol=rtol)
            assert_close(f"{k}: d loss / d weights", got[1], want[1], rtol=rtol)

    out = []
    for variant, adam in (("loss + weight gradient", False), ("loss + gradient + Adam", True)):
        if adam and size != "full":
            continue
        pinn, X, conds = problem(n_col, dt)
        impls = {"difsci": _difsci_step(pinn, X, adam)}
        layers = layers_of(pinn.net)
        notes = {"difsci": "PINN.loss_and_grad (derivative streams, Tape)" + (" + ds.nn.Adam" if adam else "")}
        for name in ("torch", "jax"):
            if peers and name in peers:
                impls[name] = peers[name].pinn(layers, X, conds, NU, dt, adam_lr=LR if adam else None)
        if "torch" in impls:
            notes["torch"] = "eager, nested autograd.grad" + (" + torch.optim.Adam" if adam else "")
        if "jax" in impls:
            notes["jax"] = "jit(value_and_grad), vmap of nested jax.grad" + (" + Adam in the jit" if adam else "")
        label = f"6 PINN Burgers {n_col} pts + {2 * N_COND} cond, MLP 2-{DEPTH}x{WIDTH}-1 {dt.name}"
        out.append(Case(label, variant, impls, ref="difsci", target=None, verify=verify, notes=notes))
    return out


def cases(size: str, peers: dict | None = None) -> list[Case]:
    counts, dtypes = SIZES[size]
    return [c for n in counts for d in dtypes for c in _cases_for(n, d, peers or {}, size)]
