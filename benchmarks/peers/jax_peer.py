"""JAX versions of saxpy, wave and the PINN step (``jax.jit``; gradients by ``jax.value_and_grad``).

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


def pinn(layers, X, conds, nu, dtype, adam_lr=None):
    """One Burgers PINN step under ``jax.jit``; returns (loss, flat weight gradient).

    The same arguments as ``torch_peer.pinn``.  The network is written for one
    point, its input derivatives are ``jax.grad`` (nested for u_xx) and
    ``jax.vmap`` maps it over the points; the weight gradient is
    ``jax.value_and_grad`` of the loss, all in one jitted function.  With
    ``adam_lr`` the step also applies an Adam update (written out: optax is not
    a dependency), inside the same jitted function.
    """
    dt = jnp.float32 if np.dtype(dtype) == np.float32 else jnp.float64
    params = [(jnp.asarray(W, dtype=dt), jnp.asarray(b, dtype=dt)) for W, b in layers]
    Xj = jnp.asarray(X, dtype=dt)
    cj = [(jnp.asarray(p, dtype=dt), jnp.asarray(v, dtype=dt)) for p, v in conds]

    def u1(ps, t, x):
        h = jnp.stack([t, x])
        for W, b in ps[:-1]:
            h = jnp.tanh(h @ W + b)
        W, b = ps[-1]
        return (h @ W + b)[0]

    u_t = jax.grad(u1, 1)
    u_x = jax.grad(u1, 2)
    u_xx = jax.grad(u_x, 2)

    def residual(ps, t, x):
        return u_t(ps, t, x) + u1(ps, t, x) * u_x(ps, t, x) - nu * u_xx(ps, t, x)

    def loss(ps):
        r = jax.vmap(residual, (None, 0, 0))(ps, Xj[:, 0], Xj[:, 1])
        total = jnp.mean(r * r)
        for p, v in cj:
            total = total + jnp.mean((jax.vmap(u1, (None, 0, 0))(ps, p[:, 0], p[:, 1]) - v) ** 2)
        return total

    vg = jax.jit(jax.value_and_grad(loss))

    def flat(g):
        return np.concatenate([np.concatenate([np.asarray(W).ravel(), np.asarray(b)]) for W, b in g])

    if not adam_lr:
        def step():
            f, g = vg(params)
            g[-1][1].block_until_ready()
            return float(f), flat(g)
        return step

    b1, b2, eps = 0.9, 0.999, 1e-8

    @jax.jit
    def adam_step(ps, m, v, k):
        f, g = jax.value_and_grad(loss)(ps)
        m = jax.tree_util.tree_map(lambda a, b: b1 * a + (1 - b1) * b, m, g)
        v = jax.tree_util.tree_map(lambda a, b: b2 * a + (1 - b2) * b * b, v, g)
        c1, c2 = 1 - b1 ** k, 1 - b2 ** k
        ps = jax.tree_util.tree_map(lambda p, a, b: p - adam_lr * (a / c1) / (jnp.sqrt(b / c2) + eps), ps, m, v)
        return f, g, ps, m, v

    state = {"p": params, "m": jax.tree_util.tree_map(jnp.zeros_like, params),
             "v": jax.tree_util.tree_map(jnp.zeros_like, params), "k": 0}

    def step_adam():
        state["k"] += 1
        f, g, state["p"], state["m"], state["v"] = adam_step(state["p"], state["m"], state["v"],
                                                             jnp.asarray(state["k"], dt))
        state["p"][-1][1].block_until_ready()
        return float(f), flat(g)
    return step_adam
