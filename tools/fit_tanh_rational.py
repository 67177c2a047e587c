"""Reproduce the coefficients of ``difsci.kernels.activations.tanh_rational``.

tanh(x) ~ x P(x^2) / Q(x^2), P of degree 6 and Q of degree 3 in x^2, Q(0) = 1, on [0, 9]:
linearised least squares (Sanathanan-Koerner weights 1/|Q|) with Lawson reweighting by the
error, which drives the fit towards the minimax one.  Prints the coefficients and the error of
the float32 evaluation in the kernel's Horner order.  ``python tools/fit_tanh_rational.py``
"""
from __future__ import annotations

import numpy as np

X = 9.0                      # tanh(9) rounds to 1 in float32: the kernel clamps its argument here
NP, NQ = 7, 4


def fit(iterations: int = 60):
    x = np.concatenate([np.linspace(1e-4, X, 6000), X * np.sin(np.linspace(0, np.pi / 2, 4000)) ** 2])
    x = np.unique(np.clip(x, 1e-5, X))
    t, z = np.tanh(x), x * x
    w, lam = np.ones_like(x), np.ones_like(x)
    for _ in range(iterations):
        a = np.hstack([x[:, None] * z[:, None] ** np.arange(NP), -t[:, None] * z[:, None] ** np.arange(1, NQ)])
        ws = w * np.sqrt(lam)
        a, b = a * ws[:, None], t * ws
        s = np.abs(a).max(axis=0)
        c = np.linalg.lstsq(a / s, b, rcond=None)[0] / s
        p, q = c[:NP], np.concatenate([[1.0], c[NP:]])
        qz = np.polyval(q[::-1], z)
        err = x * np.polyval(p[::-1], z) / qz - t
        w = 1.0 / np.abs(qz)
        lam = np.maximum(lam * np.abs(err) / np.sum(lam * np.abs(err)), 1e-12)
    return p, q


def float32_error(p, q) -> float:
    v = np.linspace(-12, 12, 2_000_001).astype(np.float32)
    x = np.clip(v, np.float32(-X), np.float32(X))
    x2 = x * x
    pp = np.float32(p[-1])
    for c in p[-2::-1]:
        pp = x2 * pp + np.float32(c)
    qq = np.float32(q[-1])
    for c in q[-2::-1]:
        qq = x2 * qq + np.float32(c)
    r = np.clip(x * pp / qq, np.float32(-1), np.float32(1))
    return float(np.abs(r.astype(np.float64) - np.tanh(v.astype(np.float64))).max())


if __name__ == "__main__":
    p, q = fit()
    print("P (x^0 .. x^12):", [repr(float(c)) for c in p])
    print("Q (x^0 .. x^6): ", [repr(float(c)) for c in q])
    print("max |error| of the float32 evaluation on [-12, 12]:", float32_error(p, q))
