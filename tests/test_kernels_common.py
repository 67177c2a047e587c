"""Helpers shared by the ``test_kernels_*`` modules (difsci.kernels), and their own sanity tests.

* :func:`probe_loss` turns any arrays (numbers or vectors, any shape) into a
  nonlinear scalar loss ``sum_i w_i y_i + 0.3 y_i^2`` with fixed random
  weights, so a gradient check sees every output element.
* :func:`grad_check` runs ``gradcheck.tape_check`` (reverse mode through
  ``ds.Tape`` against float64 central differences along random directions).
"""
from __future__ import annotations

import numpy as np
from gradcheck import tape_check

import difsci as ds


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def flat(a: ds.Array) -> ds.Array:
    """A 1-D view of the scalars of ``a`` (vectors unpacked), its ``.grad`` the matching view."""
    g = ds.Array(a.grad.data.reshape(-1), a.elem.scalar) if a.grad is not None else None
    return ds.Array(a.data.reshape(-1), a.elem.scalar, a.requires_grad, g)


@ds.kernel
def probe(y, w, out):
    """out += sum_i w[i] y[i] + 0.3 y[i]^2.  y, w: (n,); out: ()."""
    for i in range(y.shape[0]):
        out[None] += w[i] * y[i] + 0.3 * y[i] * y[i]


def probe_loss(*arrays) -> ds.Array:
    """A 0-d loss depending nonlinearly on every element of ``arrays`` (recorded on the Tape)."""
    out = ds.zeros((), requires_grad=True)
    for k, a in enumerate(arrays):
        f = flat(a)
        w = rng(1000 + 7 * k + f.shape[0]).standard_normal(f.shape[0])
        probe(f, w, out)
    return out


def grad_check(build, inputs: dict, **kw):
    """Reverse mode of ``build(**arrays) -> loss`` against central differences (float64)."""
    kw.setdefault("rtol", 1e-6)
    kw.setdefault("atol", 1e-8)
    return tape_check(build, inputs, **kw)


def test_probe_loss_value(py):
    y = rng().standard_normal((3, 2))
    a = ds.array(y, dtype=ds.vec2, requires_grad=True)
    w = rng(1000 + 6).standard_normal(6)
    want = float(np.sum(w * y.ravel() + 0.3 * y.ravel() ** 2))
    assert abs(float(probe_loss(a).numpy()) - want) < 1e-12


def test_probe_loss_gradient_reaches_vector_arrays(py):
    def build(y):
        return probe_loss(y)
    grad_check(build, {"y": rng(1).standard_normal((4, 2))}, dtypes={"y": ds.vec2})
