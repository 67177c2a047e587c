"""ds.Tape semantics (API.md §4): accumulation, zero_grads, seeds, repeated
backward, views and their .grad views, the cut-gradient AutodiffError."""
from __future__ import annotations

import numpy as np
import pytest

import difsci as ds

from gradcheck import backend_all, py_backend, tape_check  # noqa: F401

RNG = np.random.default_rng(7)


@ds.kernel
def affine(x: ds.f64[:], w: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        y[i] = w[i] * x[i] * x[i] + ds.sin(w[i])


@ds.kernel
def total(y: ds.f64[:], out: ds.f64[()]):
    for i in range(y.shape[0]):
        out[None] += y[i]


@ds.kernel
def copy_scaled(src: ds.f64[:], dst: ds.f64[:], a: float):
    for i in range(src.shape[0]):
        dst[i] = a * src[i]


def _setup(n=5):
    x = ds.array(RNG.uniform(-1, 1, n), requires_grad=True)
    w = ds.array(RNG.uniform(-1, 1, n), requires_grad=True)
    y = ds.zeros(n, requires_grad=True)
    out = ds.zeros((), requires_grad=True)
    return x, w, y, out


def _want(x, w):
    return 2 * w.numpy() * x.numpy(), x.numpy() ** 2 + np.cos(w.numpy())


def test_gradients_accumulate_and_zero_grads(backend_all):
    x, w, y, out = _setup()
    with ds.Tape() as tape:
        affine(x, w, y)
        total(y, out)
    gx, gw = _want(x, w)
    tape.backward(out)
    np.testing.assert_allclose(x.grad.numpy(), gx, rtol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), gw, rtol=1e-12)
    # a second backward adds the same again
    out.grad.numpy()[...] = 0
    tape.backward(out)
    np.testing.assert_allclose(x.grad.numpy(), 2 * gx, rtol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), 2 * gw, rtol=1e-12)
    # zero_grads zeroes every recorded array's .grad
    tape.zero_grads()
    for a in (x, w, y, out):
        assert not np.any(a.grad.numpy())
    # backward again after zero_grads gives the gradient once
    tape.backward(out)
    np.testing.assert_allclose(x.grad.numpy(), gx, rtol=1e-12)
    # entering a new Tape clears nothing
    with ds.Tape() as tape2:
        affine(x, w, y)
        total(y, out)
    np.testing.assert_allclose(x.grad.numpy(), gx, rtol=1e-12)
    tape.zero_grads()
    tape2.backward(out)
    np.testing.assert_allclose(x.grad.numpy(), gx, rtol=1e-12)
    x.zero_grad()
    assert not np.any(x.grad.numpy())


def test_backward_with_seed(py_backend):
    x, w, y, _ = _setup()
    with ds.Tape() as tape:
        affine(x, w, y)
    seed = RNG.uniform(-1, 1, 5)
    tape.backward(y, seed)
    gx, gw = _want(x, w)
    np.testing.assert_allclose(x.grad.numpy(), seed * gx, rtol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), seed * gw, rtol=1e-12)
    # another seed, as a ds.Array, after zero_grads
    tape.zero_grads()
    seed2 = ds.array(RNG.uniform(-1, 1, 5))
    tape.backward(y, seed2)
    np.testing.assert_allclose(x.grad.numpy(), seed2.numpy() * gx, rtol=1e-12)
    # one-hot seeds give rows of the Jacobian
    tape.zero_grads()
    e = np.zeros(5)
    e[2] = 1.0
    tape.backward(y, e)
    assert np.count_nonzero(x.grad.numpy()) == 1 and x.grad.numpy()[2] == pytest.approx(gx[2])


def test_backward_argument_errors(py_backend):
    x, w, y, out = _setup()
    with ds.Tape() as tape:
        affine(x, w, y)
        total(y, out)
    with pytest.raises(ValueError):
        tape.backward(y)                      # not one element, no seed
    with pytest.raises(ValueError):
        tape.backward(y, np.ones(4))          # wrong seed shape
    c = ds.zeros(())
    with pytest.raises(ds.AutodiffError):
        tape.backward(c)                      # no requires_grad


def test_intermediates_get_gradients(py_backend):
    x, w, y, out = _setup()
    z = ds.zeros(5, requires_grad=True)
    with ds.Tape() as tape:
        affine(x, w, y)
        copy_scaled(y, z, 3.0)
        total(z, out)
    tape.backward(out)
    gx, _ = _want(x, w)
    np.testing.assert_allclose(y.grad.numpy(), 0.0)   # y's values before `affine` wrote them do not matter
    np.testing.assert_allclose(x.grad.numpy(), 3.0 * gx, rtol=1e-12)


def test_only_launches_inside_the_tape_are_recorded(py_backend):
    x, w, y, out = _setup()
    affine(x, w, y)                           # not recorded
    with ds.Tape() as tape:
        total(y, out)
    total(y, out)                             # not recorded
    assert len(tape.launches) == 1
    tape.backward(out)
    np.testing.assert_allclose(y.grad.numpy(), 1.0)
    assert not np.any(x.grad.numpy())


# ------------------------------------------------------------------ views
@ds.kernel
def smooth(x: ds.f64[:], y: ds.f64[:]):
    for i in range(y.shape[0]):
        y[i] = x[i] * x[i] + 0.5 * x[i + 1] * x[i + 2]


@ds.kernel
def weigh_cols(m: ds.f64[:], out: ds.f64[()]):
    for i in range(m.shape[0]):
        out[None] += ds.exp(m[i]) * (1.0 + i)


def test_views_and_grad_views(backend_all):
    base = ds.array(RNG.uniform(-1, 1, (6, 4)), requires_grad=True)
    col = base[:, 1]                     # a strided view
    assert np.shares_memory(col.grad.numpy(), base.grad.numpy())
    inner = base[1:-1, 2]
    y = ds.zeros(4, requires_grad=True)
    out = ds.zeros((), requires_grad=True)
    with ds.Tape() as tape:
        smooth(col, y)
        weigh_cols(inner, out)
        total(y, out)
    tape.backward(out)
    b = base.numpy()
    want = np.zeros_like(b)
    c = b[:, 1]
    for i in range(4):
        want[i, 1] += 2 * c[i]
        want[i + 1, 1] += 0.5 * c[i + 2]
        want[i + 2, 1] += 0.5 * c[i + 1]
    want[1:-1, 2] += np.exp(b[1:-1, 2]) * (1.0 + np.arange(4))
    np.testing.assert_allclose(base.grad.numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(col.grad.numpy(), want[:, 1], rtol=1e-12)


def test_views_with_finite_differences(py_backend):
    def build(base):
        y = ds.zeros(4, requires_grad=True)
        out = ds.zeros((), requires_grad=True)
        smooth(base[1:, 0], y)
        weigh_cols(base[0, :], out)
        total(y, out)
        return out
    tape_check(build, {"base": RNG.uniform(-1, 1, (7, 5))})


# ------------------------------------------------------------- cut gradient
@ds.kernel
def square_into(x: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        y[i] = x[i] * x[i]


def test_cut_gradient_raises(py_backend):
    x, _, _, out = _setup()
    mid = ds.zeros(5)                          # no requires_grad, but written from x
    with ds.Tape() as tape:
        square_into(x, mid)
        total(mid, out)
    with pytest.raises(ds.AutodiffError) as ei:
        tape.backward(out)
    msg = str(ei.value)
    assert "square_into" in msg and "`y`" in msg and "total" in msg
    assert "requires_grad" in msg


def test_cut_gradient_through_numpy_array_raises(py_backend):
    x, _, _, out = _setup()
    mid = np.zeros(5)
    with ds.Tape() as tape:
        square_into(x, mid)
        total(mid, out)
    with pytest.raises(ds.AutodiffError, match="square_into"):
        tape.backward(out)


def test_constant_arrays_are_fine(py_backend):
    x, _, _, out = _setup()
    c = ds.array(RNG.uniform(-1, 1, 5))          # never written from gradient data
    mid = ds.zeros(5)
    with ds.Tape() as tape:
        square_into(c, mid)                      # a constant computed from constants
        affine(x, mid, out_y := ds.zeros(5, requires_grad=True))
        total(out_y, out)
    tape.backward(out)
    np.testing.assert_allclose(x.grad.numpy(), 2 * mid.numpy() * x.numpy(), rtol=1e-12)


def test_written_but_never_read_is_fine(py_backend):
    x, _, _, out = _setup()
    side = ds.zeros(5)                           # written from x, never read again: nothing is cut
    with ds.Tape() as tape:
        square_into(x, side)
        square_into(x, y := ds.zeros(5, requires_grad=True))
        total(y, out)
    tape.backward(out)
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy(), rtol=1e-12)


@ds.kernel
def spring_like(p: ds.vec2[:], q: ds.vec2[:], k: float, out: ds.f64[()]):
    for i in range(p.shape[0]):
        d = q[i] - p[i]
        out[None] += k * ds.dot(d, d)


def test_prepared_adjoint_launches_match_the_general_path(backend_all):
    """After a Tape's first backward, adjoint launches use a prepared call (AdjointKernel.from_tape);
    gradients stay those of the general path, also when which arguments carry .grad changes."""
    rng = np.random.default_rng(1)
    p0, q0 = rng.standard_normal((6, 2)), rng.standard_normal((6, 2))

    def grads(q_grad):
        p = ds.array(p0, dtype=ds.vec2, requires_grad=True)
        q = ds.array(q0, dtype=ds.vec2, requires_grad=q_grad)
        out = ds.zeros((), requires_grad=True)
        with ds.Tape() as tape:
            spring_like(p, q, 0.7, out)
            spring_like(q, p, 1.3, out)
        tape.backward(out)
        return p.grad.numpy().copy(), (q.grad.numpy().copy() if q_grad else None)

    want_p = 2.0 * (0.7 + 1.3) * (p0 - q0)
    for q_grad in (True, True, False, True, False):
        gp, gq = grads(q_grad)
        np.testing.assert_allclose(gp, want_p, rtol=1e-13)
        if q_grad:
            np.testing.assert_allclose(gq, -want_p, rtol=1e-13)
    prepared = spring_like.adjoint._prepared
    assert any(callable(v) for v in prepared.values()) and len(prepared) >= 2
