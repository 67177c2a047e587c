"""PyTorch (eager, CPU) version of the PINN step: the way a PyTorch user writes a PINN.

Input derivatives by nested ``torch.autograd.grad(..., create_graph=True)``,
the weight gradient by ``loss.backward()``.  Imported only when ``torch`` is
importable; it runs with torch's default intra-op threads (one per core), or
one thread under ``benchmarks/run.py --cpu-time``.
"""
from __future__ import annotations

import os

import numpy as np
import torch

if os.environ.get("DIFSCI_BENCH_ONE_THREAD") == "1":
    torch.set_num_threads(1)

NAME = "torch"
VERSION = torch.__version__


def pinn(layers, X, conds, nu, dtype, adam_lr=None):
    """A callable doing one Burgers PINN step; it returns (loss, flat weight gradient).

    layers: [(W (in, out), b (out,)), ...] numpy arrays (tanh between layers,
    identity at the end); X: (N, 2) collocation points (t, x); conds: [(points
    (M, 2), values (M,)), ...]; nu: the viscosity.  With ``adam_lr`` the step
    also applies ``torch.optim.Adam`` (betas 0.9/0.999, eps 1e-8).
    """
    td = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    params = []
    for W, b in layers:
        params += [torch.tensor(W, dtype=td, requires_grad=True), torch.tensor(b, dtype=td, requires_grad=True)]
    Xt = torch.tensor(X, dtype=td)
    cond_t = [(torch.tensor(p, dtype=td), torch.tensor(v, dtype=td)) for p, v in conds]
    opt = torch.optim.Adam(params, lr=adam_lr) if adam_lr else None

    def net(x):
        h = x
        for k in range(0, len(params) - 2, 2):
            h = torch.tanh(h @ params[k] + params[k + 1])
        return h @ params[-2] + params[-1]

    def step():
        for p in params:
            p.grad = None
        x = Xt.clone().requires_grad_(True)
        u = net(x)
        du = torch.autograd.grad(u, x, torch.ones_like(u), create_graph=True)[0]
        u_t, u_x = du[:, 0:1], du[:, 1:2]
        u_xx = torch.autograd.grad(u_x, x, torch.ones_like(u_x), create_graph=True)[0][:, 1:2]
        r = u_t + u * u_x - nu * u_xx
        loss = (r * r).mean()
        for p, v in cond_t:
            loss = loss + ((net(p)[:, 0] - v) ** 2).mean()
        loss.backward()
        g = torch.cat([p.grad.reshape(-1) for p in params])
        out = (float(loss.detach()), g.numpy().copy())
        if opt is not None:
            opt.step()
        return out

    return step
