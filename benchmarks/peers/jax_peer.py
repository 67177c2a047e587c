"""JAX versions of saxpy and wave (``jax.jit``; the gradient by ``jax.value_and_grad``).

Imported only when ``jax`` is importable; 64-bit mode is switched on (the wave is float64).
"""
from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np

NAME = "jax"
VERSION = jax.__version__


def saxpy(a0, x0, y0):
    """(forward, forward+backward) callables returning what the saxpy workload verifies."""
    a = jnp.asarray(np.float32(a0))
    x = jnp.asarray(x0)
    y = jnp.asarray(y0)

    @jax.jit
    def fwd(a, x, y):
        z = a * x + y
        return jnp.sum(z * z), z

    def loss(a, x, y):
        z = a * x + y
        return jnp.sum(z * z)

    fb = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))

    def run_fwd():
        s, z = fwd(a, x, y)
        z.block_until_ready()
        return float(s), np.asarray(z)

    def run_fb():
        s, (ga, gx) = fb(a, x, y)
        gx.block_until_ready()
        return float(s), float(ga), np.asarray(gx)

    return run_fwd, run_fb


def wave(h0, target0, k):
    """(forward, forward+backward): loss, and its gradient w.r.t. h[0] and h[1]."""
    T = h0.shape[0]
    tgt = jnp.asarray(target0)
    a0 = jnp.asarray(h0[0])
    a1 = jnp.asarray(h0[1])

    def loss(p0, p1):
        def step(carry, _):
            prev, cur = carry
            lap = cur[2:, 1:-1] + cur[:-2, 1:-1] + cur[1:-1, 2:] + cur[1:-1, :-2] - 4.0 * cur[1:-1, 1:-1]
            inner = 2.0 * cur[1:-1, 1:-1] - prev[1:-1, 1:-1] + k * lap
            nxt = jnp.zeros_like(cur).at[1:-1, 1:-1].set(inner)
            return (cur, nxt), None

        (_, last), _ = jax.lax.scan(step, (p0, p1), None, length=T - 2)
        return jnp.sum((last - tgt) ** 2)

    fwd = jax.jit(loss)
    fb = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))

    def run_fwd():
        return float(fwd(a0, a1))

    def run_fb():
        s, (g0, g1) = fb(a0, a1)
        g1.block_until_ready()
        return float(s), np.asarray(g0), np.asarray(g1)

    return run_fwd, run_fb
