"""Optimizers over parameter arrays: SGD, Adam and L-BFGS (strong Wolfe line search).

They update ``.data`` from ``.grad`` in place with NumPy on whole arrays; the
gradients themselves come from difsci's reverse mode.
"""
from __future__ import annotations

import math

import numpy as np

from ..array import Array


def _flat_list(params):
    if isinstance(params, Array):
        return [params]
    params = list(params)
    if not params or not all(isinstance(p, Array) and p.requires_grad for p in params):
        raise TypeError("optimizers take ds.Arrays created with requires_grad=True (e.g. net.parameters())")
    return params


class Optimizer:
    def __init__(self, params):
        self.params = _flat_list(params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.zero_grad()

    def _lr(self):
        lr = self.lr
        return lr(self.t) if callable(lr) else lr


class SGD(Optimizer):
    """x ← x − lr·g (with optional momentum)."""

    def __init__(self, params, lr=1e-3, momentum=0.0):
        super().__init__(params)
        self.lr, self.momentum, self.t = lr, momentum, 0
        self.buf = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        lr = self._lr()
        for p, b in zip(self.params, self.buf):
            g = p.grad.data
            if self.momentum:
                b *= self.momentum
                b += g
                g = b
            p.data -= lr * g
        self.t += 1


class Adam(Optimizer):
    """Adam (Kingma & Ba); ``lr`` may be a function of the step count (a schedule)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.t = 0
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        lr = self.lr(self.t - 1) if callable(self.lr) else self.lr
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad.data
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p.data -= (lr / c1) * m / (np.sqrt(v / c2) + self.eps)


class LBFGS(Optimizer):
    """Limited-memory BFGS with a strong Wolfe line search.

    ``step(closure)``: ``closure()`` zeroes the gradients, evaluates the loss,
    fills the parameters' ``.grad`` and returns the loss as a float.
    ``max_iter`` iterations are run per ``step`` call (default 1).
    """

    def __init__(self, params, lr=1.0, history_size=50, max_iter=1, tolerance_grad=1e-12,
                 tolerance_change=1e-15, c1=1e-4, c2=0.9):
        super().__init__(params)
        self.lr, self.history_size, self.max_iter = lr, history_size, max_iter
        self.tol_grad, self.tol_change, self.c1, self.c2 = tolerance_grad, tolerance_change, c1, c2
        self.s, self.y = [], []
        self.t = 0
        self.converged = False

    def _get(self):
        return np.concatenate([p.data.ravel().astype(np.float64) for p in self.params])

    def _set(self, x):
        k = 0
        for p in self.params:
            n = p.data.size
            p.data[...] = x[k:k + n].reshape(p.data.shape)
            k += n

    def _grad(self):
        return np.concatenate([p.grad.data.ravel().astype(np.float64) for p in self.params])

    def _eval(self, closure, x):
        self._set(x)
        f = float(closure())
        return f, self._grad()

    def _direction(self, g):
        q = g.copy()
        alphas = []
        for s, y in zip(reversed(self.s), reversed(self.y)):
            a = s @ q / (y @ s)
            alphas.append(a)
            q -= a * y
        if self.s:
            q *= (self.s[-1] @ self.y[-1]) / (self.y[-1] @ self.y[-1])
        for (s, y), a in zip(zip(self.s, self.y), reversed(alphas)):
            b = y @ q / (y @ s)
            q += (a - b) * s
        return -q

    def step(self, closure) -> float:
        x = self._get()
        f, g = self._eval(closure, x)
        for _ in range(self.max_iter):
            if np.max(np.abs(g)) <= self.tol_grad:
                self.converged = True
                break
            d = self._direction(g)
            gd = g @ d
            if gd >= 0:                      # not a descent direction: restart
                self.s.clear()
                self.y.clear()
                d, gd = -g, -(g @ g)
            step0 = self.lr if self.s else min(1.0, 1.0 / max(np.sum(np.abs(g)), 1e-12)) * self.lr
            a, f_new, g_new = strong_wolfe(lambda t: self._eval(closure, x + t * d), f, g, d, step0,
                                           self.c1, self.c2)
            x_new = x + a * d
            s, y = x_new - x, g_new - g
            if y @ s > 1e-10 * (s @ s):
                self.s.append(s)
                self.y.append(y)
                if len(self.s) > self.history_size:
                    self.s.pop(0)
                    self.y.pop(0)
            self.t += 1
            change = abs(f_new - f)
            x, f, g = x_new, f_new, g_new
            if change < self.tol_change or np.max(np.abs(s)) < self.tol_change:
                self.converged = True
                break
        self._set(x)
        closure()          # leave the gradients of the final point in .grad
        return f


def _cubic_min(a, fa, ga, b, fb, gb):
    """Minimiser of the cubic through (a, fa, ga) and (b, fb, gb), kept inside [a, b]."""
    d1 = ga + gb - 3 * (fa - fb) / (a - b)
    sq = d1 * d1 - ga * gb
    lo, hi = min(a, b), max(a, b)
    if sq >= 0:
        d2 = math.sqrt(sq) * (1 if b > a else -1)
        t = b - (b - a) * ((gb + d2 - d1) / (gb - ga + 2 * d2))
        if lo <= t <= hi:
            return t
    return 0.5 * (lo + hi)


def strong_wolfe(phi, f0, g0, d, t, c1=1e-4, c2=0.9, max_evals=25):
    """Step length satisfying the strong Wolfe conditions (Nocedal & Wright, alg. 3.5/3.6).

    ``phi(t)`` returns (f, gradient) at x + t d.  Returns (t, f, gradient).
    """
    dg0 = g0 @ d
    t_prev, f_prev, dg_prev, g_prev = 0.0, f0, dg0, g0
    evals = 0
    while evals < max_evals:
        f, g = phi(t)
        evals += 1
        dg = g @ d
        if f > f0 + c1 * t * dg0 or (evals > 1 and f >= f_prev):
            return _zoom(phi, f0, dg0, d, t_prev, f_prev, dg_prev, g_prev, t, f, dg, g, c1, c2, max_evals - evals)
        if abs(dg) <= -c2 * dg0:
            return t, f, g
        if dg >= 0:
            return _zoom(phi, f0, dg0, d, t, f, dg, g, t_prev, f_prev, dg_prev, g_prev, c1, c2, max_evals - evals)
        t_prev, f_prev, dg_prev, g_prev = t, f, dg, g
        t = t * 2.0
    return t_prev, f_prev, g_prev


def _zoom(phi, f0, dg0, d, lo, f_lo, dg_lo, g_lo, hi, f_hi, dg_hi, g_hi, c1, c2, budget):
    for _ in range(max(budget, 1)):
        t = _cubic_min(lo, f_lo, dg_lo, hi, f_hi, dg_hi)
        width = abs(hi - lo)
        if min(abs(t - lo), abs(t - hi)) < 0.1 * width:   # keep away from the ends
            t = 0.5 * (lo + hi)
        f, g = phi(t)
        dg = g @ d
        if f > f0 + c1 * t * dg0 or f >= f_lo:
            hi, f_hi, dg_hi = t, f, dg
        else:
            if abs(dg) <= -c2 * dg0:
                return t, f, g
            if dg * (hi - lo) >= 0:
                hi, f_hi, dg_hi = lo, f_lo, dg_lo
            lo, f_lo, dg_lo, g_lo = t, f, dg, g
        if abs(hi - lo) < 1e-16:
            break
    return lo, f_lo, g_lo
