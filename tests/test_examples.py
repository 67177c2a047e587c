"""The differentiable-physics examples (examples/physics, issue 6) at their tiny size.

For each example: it runs through its ``main(args)`` (plots included) and its
loss goes down; and its gradient passes a Taylor test -- along a random
direction d, the remainder |L(x + h d) - L(x) - h dL.d| falls like h^2.

Most tests use the plain-Python backend (no numba compile: the whole file
stays within a minute or two).  The three examples whose kernels compile
quickly (seconds, cold) also run on the cpu backend, through the command
line; mass_spring, smoke and diffmpm take about a minute each to compile
cold for the cpu, so they run there only by hand (``difsci run NAME``).
"""
from __future__ import annotations

import argparse

import numpy as np
import pytest

import difsci as ds
from difsci import cli

# name -> (simulation class, iterations for the loss test, step h of the Taylor test)
EXAMPLES = {
    "wave": ("Wave", 4, 2e-3),
    "heat_inverse": ("HeatInverse", 4, 2e-3),
    "billiards": ("Billiards", 6, 2e-3),
    "mass_spring": ("MassSpring", 5, 1e-3),
    "smoke": ("Smoke", 4, 2e-3),
    "diffmpm": ("DiffMPM", 4, 2e-3),
}
_modules: dict = {}


def example(name):
    """The example module, loaded once (as ``difsci run`` loads it)."""
    if name not in _modules:
        _modules[name] = cli.load_module(cli.EXAMPLES_DIR / f"{name}.py", f"difsci_examples_{name}")
    return _modules[name]


def test_all_listed_with_a_description():
    listed = cli.list_examples()
    for name in EXAMPLES:
        assert name in listed, f"{name} missing from `difsci examples`"
        assert len(listed[name]) > 20, listed[name]


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_loss_decreases(name, py, tmp_path, capsys):
    iters = EXAMPLES[name][1]
    png = tmp_path / f"{name}.png"
    gif = tmp_path / f"{name}.gif" if name == "billiards" else None
    args = argparse.Namespace(size="small", iters=iters, plot=str(png), gif=gif and str(gif), backend=None)
    losses = example(name).main(args)["losses"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0], losses
    assert png.stat().st_size > 10_000
    if gif:
        assert gif.stat().st_size > 10_000
    out = capsys.readouterr().out
    assert f"iter {iters}/{iters}  loss " in out


def taylor_remainders(f, x, d, hs):
    """|f(x + h d) - f(x) - h f'(x).d| for each h, with f returning (loss, gradient)."""
    f0, g = f(x)
    return np.array([abs(f(x + h * d)[0] - f0 - h * (g @ d)) for h in hs])


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_gradient_taylor(name, py):
    cls, _, h = EXAMPLES[name]
    sim = getattr(example(name), cls)("small")
    rng = np.random.default_rng(0)
    x = sim.x0()
    if name != "billiards":                 # away from the symmetric start (zero fields, zero weights)
        x = x + 0.1 * rng.standard_normal(x.shape)
    d = rng.standard_normal(x.shape)
    d /= np.linalg.norm(d)
    hs = h * 0.5 ** np.arange(4)
    r = taylor_remainders(sim.loss_and_grad, x, d, hs)
    orders = np.log2(r[:-1] / r[1:])
    assert np.all(orders > 1.8), (r, orders)
    assert r[-1] > 1e-14, r                 # the test measured something above round-off


@pytest.mark.parametrize("name", ["wave", "heat_inverse", "billiards"])
def test_cpu_backend_through_the_command_line(name, cpu, capsys):
    assert cli.main(["run", name, "--size", "small", "--iters", "3", "--backend", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "iter 3/3  loss " in out


def test_cpu_gradient_matches_python():
    mod = example("wave")
    x = np.random.default_rng(1).standard_normal(32 * 32)
    results = []
    for backend in ("python", "cpu"):
        ds.init(backend=backend)
        try:
            results.append(mod.Wave("small").loss_and_grad(x))
        finally:
            ds.init(backend="cpu")
    (l_py, g_py), (l_cpu, g_cpu) = results
    assert abs(l_py - l_cpu) <= 1e-12 * abs(l_py)
    np.testing.assert_allclose(g_cpu, g_py, rtol=1e-9, atol=1e-15)
