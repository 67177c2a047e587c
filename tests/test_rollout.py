"""ds.Rollout (API.md §4 "Long simulations in bounded memory"): binomial checkpointing.

Gradients with any number of checkpoints equal those of a plain Tape over a time axis; the number of
forward steps executed is what the binomial schedule predicts; snapshots never exceed the budget."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

import difsci as ds
from difsci.rollout import advances, first_descent, predicted_forward_steps, split


# ------------------------------------------------------------------ the schedule
@lru_cache(None)
def _optimal(n, c):
    """Fewest advances by exhaustive dynamic programming (the definition the closed form must match)."""
    if n == 1:
        return 0
    if c == 0:
        return n * (n - 1) // 2
    return min(m + _optimal(n - m, c - 1) + _optimal(m, c) for m in range(1, n))


def test_schedule_is_optimal():
    for c in range(0, 6):
        for n in range(1, 90):
            assert advances(n, c) == _optimal(n, c), (n, c)
            if c >= 1 and n >= 2:
                m = split(n, c)
                assert 1 <= m < n
                assert m + _optimal(n - m, c - 1) + _optimal(m, c) == _optimal(n, c), (n, c, m)


def test_schedule_large_counts():
    # 20,000 steps with 32 checkpoints: recomputation grows like log, not like steps
    assert advances(20000, 32) < 4 * 20000
    assert len(first_descent(20000, 32)) == 32
    assert first_descent(10, 100) == list(range(1, 10))
    assert predicted_forward_steps(10, None) == 20


# ------------------------------------------------------------------ workloads
@ds.kernel
def wave2(hp: ds.f64[:, :], h: ds.f64[:, :], hp2: ds.f64[:, :], h2: ds.f64[:, :], c2: ds.f64[:, :]):
    n, m = h.shape[0], h.shape[1]
    for i, j in ds.ndrange(n, m):
        hp2[i, j] = h[i, j]
        if i > 0 and i < n - 1 and j > 0 and j < m - 1:
            lap = h[i + 1, j] + h[i - 1, j] + h[i, j + 1] + h[i, j - 1] - 4.0 * h[i, j]
            h2[i, j] = 2.0 * h[i, j] - hp[i, j] + c2[i, j] * lap
        else:
            h2[i, j] = 0.0


@ds.kernel
def wave_t(hs: ds.f64[:, :, :], t: int, c2: ds.f64[:, :]):
    n, m = hs.shape[1], hs.shape[2]
    for i, j in ds.ndrange(n, m):
        if i > 0 and i < n - 1 and j > 0 and j < m - 1:
            lap = hs[t, i + 1, j] + hs[t, i - 1, j] + hs[t, i, j + 1] + hs[t, i, j - 1] - 4.0 * hs[t, i, j]
            hs[t + 1, i, j] = 2.0 * hs[t, i, j] - hs[t - 1, i, j] + c2[i, j] * lap
        else:
            hs[t + 1, i, j] = 0.0


@ds.kernel
def field_loss(h: ds.f64[:, :], target: ds.f64[:, :], loss: ds.f64[()]):
    for i, j in ds.ndrange(h.shape[0], h.shape[1]):
        loss[None] += (h[i, j] - target[i, j]) ** 2


def _wave_data(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n)) * 0.1, rng.standard_normal((n, n)) * 0.1, 0.1 + 0.1 * rng.random((n, n)), \
        rng.standard_normal((n, n)) * 0.1


def _wave_reference(T, h0, h1, c2v, target):
    n = h0.shape[0]
    hs = ds.zeros((T + 2, n, n), requires_grad=True)
    hs.numpy()[0], hs.numpy()[1] = h0, h1
    c2 = ds.array(c2v, requires_grad=True)
    tg = ds.array(target)
    loss = ds.zeros((), requires_grad=True)
    with ds.Tape() as tape:
        for t in range(1, T + 1):
            wave_t(hs, t, c2)
        field_loss(hs[T + 1], tg, loss)
    tape.backward(loss)
    return loss.numpy().item(), hs.grad.numpy()[0].copy(), hs.grad.numpy()[1].copy(), c2.grad.numpy().copy()


def _wave_rollout(T, h0, h1, c2v, target, checkpoints):
    hp, h = ds.array(h0, requires_grad=True), ds.array(h1, requires_grad=True)
    c2 = ds.array(c2v, requires_grad=True)
    tg = ds.array(target)
    loss = ds.zeros((), requires_grad=True)

    def step(t, hp, h, hp2, h2):
        wave2(hp, h, hp2, h2, c2)

    sim = ds.Rollout(step, state=[hp, h], steps=T, checkpoints=checkpoints)
    with ds.Tape() as tape:
        sim.run()
        field_loss(sim.state[1], tg, loss)
    tape.backward(loss)
    return (loss.numpy().item(), hp.grad.numpy().copy(), h.grad.numpy().copy(), c2.grad.numpy().copy()), sim


@pytest.mark.parametrize("checkpoints", [None, 0, 1, 3, 5, 7, 40])
def test_wave_gradients_match_plain_tape(checkpoints):
    T = 23                       # 23 steps: no checkpoint count here divides it
    data = _wave_data()
    ref = _wave_reference(T, *data)
    got, sim = _wave_rollout(T, *data, checkpoints)
    assert got[0] == pytest.approx(ref[0], rel=1e-13)
    for g, r in zip(got[1:], ref[1:]):
        np.testing.assert_allclose(g, r, rtol=1e-11, atol=1e-13)
    assert np.abs(ref[3]).max() > 0 and np.abs(ref[1]).max() > 0
    st = sim.stats
    assert st["adjoint_steps"] == T
    assert st["forward_steps"] == predicted_forward_steps(T, checkpoints)
    budget = T - 1 if checkpoints is None else checkpoints
    assert st["max_snapshots"] <= budget


# mass-spring: vec2 state, a scratch force array written every step, parameters read by the step
@ds.kernel
def chain_forces(x: ds.vec2[:], k: ds.f64[:], rest: float, f: ds.vec2[:]):
    n = x.shape[0]
    for i in range(n):
        acc = ds.vec2(0.0, -1.0)
        if i > 0:
            d = x[i] - x[i - 1]
            acc -= k[i - 1] * (ds.norm(d) - rest) * ds.normalize(d)
        if i < n - 1:
            d = x[i + 1] - x[i]
            acc += k[i] * (ds.norm(d) - rest) * ds.normalize(d)
        f[i] = acc


@ds.kernel
def integrate(x: ds.vec2[:], v: ds.vec2[:], f: ds.vec2[:], x2: ds.vec2[:], v2: ds.vec2[:], dt: float):
    for i in range(x.shape[0]):
        v2[i] = v[i] * 0.99 + dt * f[i]
        x2[i] = x[i] + dt * v2[i]


@ds.kernel
def height(x: ds.vec2[:], loss: ds.f64[()]):
    for i in range(x.shape[0]):
        loss[None] += x[i][1] * (1.0 + i)


def _springs(n=6, seed=1):
    rng = np.random.default_rng(seed)
    x0 = np.stack([np.arange(n) * 0.5, 0.05 * rng.standard_normal(n)], axis=1)
    return x0, 0.1 * rng.standard_normal((n, 2)), 5.0 + rng.random(n - 1)


def test_mass_spring_gradients_match_plain_tape():
    T, dt = 19, 0.01
    x0, v0, kv = _springs()
    n = x0.shape[0]
    # reference: a time axis under a plain Tape
    xs = ds.zeros((T + 1, n), ds.vec2, requires_grad=True)
    vs = ds.zeros((T + 1, n), ds.vec2, requires_grad=True)
    fs = ds.zeros((T, n), ds.vec2, requires_grad=True)
    xs.numpy()[0], vs.numpy()[0] = x0, v0
    k = ds.array(kv, requires_grad=True)
    loss = ds.zeros((), requires_grad=True)
    with ds.Tape() as tape:
        for t in range(T):
            chain_forces(xs[t], k, 0.5, fs[t])
            integrate(xs[t], vs[t], fs[t], xs[t + 1], vs[t + 1], dt)
        height(xs[T], loss)
    tape.backward(loss)
    want = (xs.grad.numpy()[0].copy(), vs.grad.numpy()[0].copy(), k.grad.numpy().copy())

    for checkpoints in (None, 2, 4):
        x, v = ds.array(x0, ds.vec2, requires_grad=True), ds.array(v0, ds.vec2, requires_grad=True)
        k2 = ds.array(kv, requires_grad=True)
        f = ds.zeros(n, ds.vec2, requires_grad=True)        # scratch, reused by every step
        loss2 = ds.zeros((), requires_grad=True)

        def step(t, x, v, x2, v2):
            chain_forces(x, k2, 0.5, f)
            integrate(x, v, f, x2, v2, dt)

        sim = ds.Rollout(step, state=[x, v], steps=T, checkpoints=checkpoints)
        with ds.Tape() as tape2:
            sim.run()
            height(sim.state[0], loss2)
        tape2.backward(loss2)
        assert loss2.numpy().item() == pytest.approx(loss.numpy().item(), rel=1e-13)
        for g, w in zip((x.grad.numpy(), v.grad.numpy(), k2.grad.numpy()), want):
            np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-13)
        np.testing.assert_array_equal(x.numpy(), x0)            # the initial state is not modified
        np.testing.assert_allclose(sim.state[0].numpy(), xs.numpy()[T], rtol=1e-14)


# ------------------------------------------------------------------ semantics
def test_run_without_tape_and_repeated_backward():
    T = 9
    data = _wave_data(8, seed=3)
    hp, h = ds.array(data[0]), ds.array(data[1])
    c2 = ds.array(data[2], requires_grad=True)

    def step(t, hp, h, hp2, h2):
        wave2(hp, h, hp2, h2, c2)

    sim = ds.Rollout(step, state=[hp, h], steps=T, checkpoints=2)
    out = [a.numpy().copy() for a in sim.run()]            # no Tape: just the forward run
    tg = ds.array(data[3])
    loss = ds.zeros((), requires_grad=True)
    with ds.Tape() as tape:
        sim.run()
        field_loss(sim.state[1], tg, loss)
    np.testing.assert_array_equal(sim.state[1].numpy(), out[1])
    tape.backward(loss)
    g1 = c2.grad.numpy().copy()
    assert np.abs(g1).max() > 0
    np.testing.assert_array_equal(sim.state[1].numpy(), out[1])   # backward leaves the final state alone
    tape.zero_grads()
    tape.backward(loss)                                     # again: snapshots are recomputed as needed
    np.testing.assert_allclose(c2.grad.numpy(), g1, rtol=1e-12)


def test_bad_arguments_and_steps():
    x = ds.zeros(4, requires_grad=True)
    with pytest.raises(TypeError, match="step must be a function"):
        ds.Rollout(3, state=[x], steps=3)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        ds.Rollout(lambda t, a, b: None, state=[x], steps=0)
    with pytest.raises(ValueError, match="checkpoints"):
        ds.Rollout(lambda t, a, b: None, state=[x], steps=3, checkpoints=-1)
    with pytest.raises(TypeError, match="state must be"):
        ds.Rollout(lambda t, a, b: None, state=[np.zeros(3)], steps=3)


@ds.kernel
def scale_into(a: ds.f64[:], b: ds.f64[:]):
    for i in range(a.shape[0]):
        b[i] = 2.0 * a[i]


@ds.kernel
def scale_inplace(a: ds.f64[:]):
    for i in range(a.shape[0]):
        a[i] = 2.0 * a[i]


def test_step_misuse_is_an_error():
    x = ds.zeros(4, requires_grad=True)
    sim = ds.Rollout(lambda t, a, b: scale_inplace(a), state=[x], steps=3)
    with ds.Tape():
        with pytest.raises(ds.AutodiffError, match="writes the current state"):
            sim.run()
    sim = ds.Rollout(lambda t, a, b: None, state=[x], steps=3)
    with ds.Tape():
        with pytest.raises(ValueError, match="does not write next-state"):
            sim.run()
    carry = ds.zeros(4, requires_grad=True)

    def step(t, a, b):
        scale_into(carry, b)        # reads last step's `carry` …
        scale_into(a, carry)        # … then overwrites it: hidden state
    sim = ds.Rollout(step, state=[x], steps=3)
    with ds.Tape():
        with pytest.raises(ds.AutodiffError, match="carries values from one step to the next"):
            sim.run()


def test_checkpointing_benchmark_runs_small():
    """benchmarks/checkpointing.py end to end at a tiny size (the numbers themselves are not checked)."""
    from benchmarks import checkpointing
    res = checkpointing.main(["--n", "12", "--steps", "40", "--checkpoints", "3", "--store-all-steps", "20"])
    assert res["forward_steps"] == res["predicted_forward_steps"]
    assert res["ckpt_snapshot_bytes"] == 3 * 2 * 12 * 12 * 8
    assert res["time_s"] > 0 and res["model_s"] > 0


def test_wave_long_example_small(tmp_path, capsys):
    """examples/physics/wave_long.py (ds.Rollout, 8 checkpoints) at its small size: the loss falls."""
    import argparse

    from difsci import cli
    mod = cli.load_module(cli.EXAMPLES_DIR / "wave_long.py", "difsci_examples_wave_long")
    png = tmp_path / "wl.png"
    out = mod.main(argparse.Namespace(size="small", iters=4, plot=str(png)))
    assert out["losses"][-1] < 0.5 * out["losses"][0]
    assert out["stats"]["max_snapshots"] <= 8 and out["stats"]["adjoint_steps"] == 300
    assert png.stat().st_size > 10_000
    assert "storing every step would take" in capsys.readouterr().out


def test_running_twice_before_backward_is_an_error():
    T = 5
    data = _wave_data(6, seed=4)
    hp, h = ds.array(data[0], requires_grad=True), ds.array(data[1], requires_grad=True)
    c2 = ds.array(data[2], requires_grad=True)
    tg = ds.array(data[3])

    def step(t, hp, h, hp2, h2):
        wave2(hp, h, hp2, h2, c2)

    sim = ds.Rollout(step, state=[hp, h], steps=T, checkpoints=1)
    loss = ds.zeros((), requires_grad=True)
    with ds.Tape() as tape:
        sim.run()
        field_loss(sim.state[1], tg, loss)
        with pytest.raises(ds.AutodiffError, match="already ran on this Tape"):
            sim.run()
    with ds.Tape() as tape2:                     # another tape runs it again …
        sim.run()
    with pytest.raises(ds.AutodiffError, match="ran again"):
        tape.backward(loss)                      # … so the first tape's run cannot be reversed
    loss2 = ds.zeros((), requires_grad=True)
    with ds.Tape() as tape3:
        sim.run()
        field_loss(sim.state[1], tg, loss2)
    tape3.backward(loss2)                        # the latest run is fine
    assert np.abs(c2.grad.numpy()).max() > 0
    del tape2


def test_python_backend_rollout_matches_plain_tape(py):
    """The same rollout on the plain-Python backend (the oracle)."""
    T = 9
    data = _wave_data(6, seed=7)
    ref = _wave_reference(T, *data)
    got, sim = _wave_rollout(T, *data, 2)
    for g, r in zip(got[1:], ref[1:]):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-14)
    assert sim.stats["forward_steps"] == predicted_forward_steps(T, 2)
