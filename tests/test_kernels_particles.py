"""difsci.kernels.particles against NumPy references, and their gradients against finite differences."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_kernels_common import grad_check, probe_loss, rng

import difsci as ds
import difsci.kernels as dk

VEC = {2: ds.vec2, 3: ds.vec3}
MAT = {2: ds.mat2, 3: ds.mat3}


def _stencil(xp, dx):
    X = xp / dx
    base = np.floor(X - 0.5)
    fx = X - base
    w = np.stack([0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1) ** 2, 0.5 * (fx - 0.5) ** 2])   # (3, d)
    for offs in itertools.product(range(3), repeat=len(xp)):
        weight = np.prod([w[o, a] for a, o in enumerate(offs)])
        yield tuple((base + offs).astype(int)), weight, np.array(offs) - fx


def p2g_ref(x, v, aff, m, dx, shape):
    d = x.shape[1]
    gm, gmv = np.zeros(shape), np.zeros(shape + (d,))
    for p in range(x.shape[0]):
        for node, w, off in _stencil(x[p], dx):
            gm[node] += w * m[p]
            gmv[node] += w * (m[p] * v[p] + aff[p] @ (off * dx))
    return gm, gmv


def g2p_ref(x, gv, dx):
    d = x.shape[1]
    v, C = np.zeros_like(x), np.zeros((x.shape[0], d, d))
    for p in range(x.shape[0]):
        for node, w, off in _stencil(x[p], dx):
            v[p] += w * gv[node]
            C[p] += 4 / dx * w * np.outer(gv[node], off)
    return v, C


def particles(d, P, seed=0):
    r = rng(seed)
    return (r.uniform(0.3, 0.7, (P, d)), r.standard_normal((P, d)), r.standard_normal((P, d, d)),
            r.uniform(0.5, 1.5, P))


@pytest.mark.parametrize("d", [2, 3])
def test_p2g_g2p(py, d):
    n, dx = 8, 1 / 8
    x, v, aff, m = particles(d, 6)
    shape = (n,) * d
    gm, gmv = ds.zeros(shape), ds.zeros(shape, dtype=VEC[d])
    (dk.p2g2d if d == 2 else dk.p2g3d)(ds.array(x, dtype=VEC[d]), ds.array(v, dtype=VEC[d]),
                                       ds.array(aff, dtype=MAT[d]), m, dx, gm, gmv)
    rm, rmv = p2g_ref(x, v, aff, m, dx, shape)
    np.testing.assert_allclose(gm.numpy(), rm, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gmv.numpy(), rmv, rtol=1e-12, atol=1e-12)
    assert abs(gm.numpy().sum() - m.sum()) < 1e-12                          # mass is conserved
    np.testing.assert_allclose(gmv.numpy().reshape(-1, d).sum(0), (m[:, None] * v).sum(0), atol=1e-12)
    gv = rng(1).standard_normal(shape + (d,))
    vo, Co = ds.zeros(6, dtype=VEC[d]), ds.zeros(6, dtype=MAT[d])
    (dk.g2p2d if d == 2 else dk.g2p3d)(ds.array(x, dtype=VEC[d]), ds.array(gv, dtype=VEC[d]), dx, vo, Co)
    rv, rC = g2p_ref(x, gv, dx)
    np.testing.assert_allclose(vo.numpy(), rv, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Co.numpy(), rC, rtol=1e-12, atol=1e-12)


def test_g2p_reproduces_affine_fields(py):
    # APIC with quadratic B-splines transfers affine velocity fields exactly: v(x) = b + A x
    dx, n = 1 / 10, 10
    A, b = rng(2).standard_normal((2, 2)), rng(3).standard_normal(2)
    nodes = np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1) * dx
    gv = ds.array(nodes @ A.T + b, dtype=ds.vec2)
    x = rng(4).uniform(0.3, 0.7, (5, 2))
    vo, Co = ds.zeros(5, dtype=ds.vec2), ds.zeros(5, dtype=ds.mat2)
    dk.g2p2d(ds.array(x, dtype=ds.vec2), gv, dx, vo, Co)
    np.testing.assert_allclose(vo.numpy(), x @ A.T + b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Co.numpy(), np.broadcast_to(A, (5, 2, 2)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("d", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_transfer_gradients(py, d):
    n, dx = 6, 1 / 6
    P = 3 if d == 2 else 2

    def build(x, v, aff, m, gv):
        gm = ds.zeros((n,) * d, requires_grad=True)
        gmv = ds.zeros((n,) * d, dtype=VEC[d], requires_grad=True)
        (dk.p2g2d if d == 2 else dk.p2g3d)(x, v, aff, m, dx, gm, gmv)
        vo, Co = ds.zeros(P, dtype=VEC[d], requires_grad=True), ds.zeros(P, dtype=MAT[d], requires_grad=True)
        (dk.g2p2d if d == 2 else dk.g2p3d)(x, gv, dx, vo, Co)
        return probe_loss(gm, gmv, vo, Co)
    x, v, aff, m = particles(d, P, seed=5)
    x = 0.4 + 0.2 * rng(6).random((P, d))            # keep the stencils inside the 6^d grid
    grad_check(build, {"x": x, "v": v, "aff": aff, "m": m, "gv": rng(7).standard_normal((n,) * d + (d,))},
               dtypes={"x": VEC[d], "v": VEC[d], "aff": MAT[d], "gv": VEC[d]}, ndirs=1)


def test_mls_affine():
    S, C = rng(8).standard_normal((2, 2)), rng(9).standard_normal((2, 2))
    np.testing.assert_allclose(dk.mls_affine(S, C, 2.0, 0.1, 1e-3, 0.05), -1e-3 * 0.1 * 4 / 0.05**2 * S + 2 * C)


def test_p2g_on_cpu_matches_the_oracle(cpu):
    # forward only on numba (vector atomics, per-thread copies); the adjoints are checked on the oracle above
    x, v, aff, m = particles(2, 300, seed=10)
    res = []
    for backend in ("cpu", "python"):
        ds.init(backend=backend)
        gm, gmv = ds.zeros((16, 16)), ds.zeros((16, 16), dtype=ds.vec2)
        dk.p2g2d(ds.array(x, dtype=ds.vec2), ds.array(v, dtype=ds.vec2), ds.array(aff, dtype=ds.mat2), m, 1 / 16,
                 gm, gmv)
        res.append((gm.numpy(), gmv.numpy()))
    ds.init(backend="cpu")
    for c, p in zip(*res):
        np.testing.assert_allclose(c, p, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ springs
def spring_ref(x, v, springs, rest, k, c):
    f = np.zeros_like(x)
    E = 0.0
    for s, (a, b) in enumerate(springs):
        d = x[b] - x[a]
        L = np.linalg.norm(d)
        fs = k[s] * (L - rest[s]) * d / L + c[s] * np.dot(v[b] - v[a], d / L) * d / L
        f[a] += fs
        f[b] -= fs
        E += 0.5 * k[s] * (L - rest[s]) ** 2
    return f, E


@pytest.mark.parametrize("d", [2, 3])
def test_springs(py, d):
    P = 5
    x, v = rng(13).standard_normal((P, d)), rng(14).standard_normal((P, d))
    springs = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 0], [0, 2]], np.int32)
    rest, k, c = rng(15).uniform(0.5, 1.5, 6), rng(16).uniform(1, 3, 6), rng(17).uniform(0, 1, 6)
    f, E = ds.zeros(P, dtype=VEC[d]), ds.zeros(())
    xa, va = ds.array(x, dtype=VEC[d]), ds.array(v, dtype=VEC[d])
    dk.spring_forces(xa, springs, rest, k, f)
    dk.spring_damping(xa, va, springs, c, f)
    dk.spring_energy(xa, springs, rest, k, E)
    rf, rE = spring_ref(x, v, springs, rest, k, c)
    np.testing.assert_allclose(f.numpy(), rf, rtol=1e-12, atol=1e-12)
    assert abs(float(E.numpy()) - rE) < 1e-12
    # the elastic force is minus the gradient of the energy
    xg = ds.array(x, dtype=VEC[d], requires_grad=True)
    E2 = ds.zeros((), requires_grad=True)
    with ds.Tape() as tape:
        dk.spring_energy(xg, springs, rest, k, E2)
    tape.backward(E2)
    f_el = ds.zeros(P, dtype=VEC[d])
    dk.spring_forces(xa, springs, rest, k, f_el)
    np.testing.assert_allclose(-xg.grad.numpy(), f_el.numpy(), rtol=1e-12, atol=1e-12)

    def build(x, v, rest, k, c):
        f = ds.zeros(P, dtype=VEC[d], requires_grad=True)
        dk.spring_forces(x, springs, rest, k, f)
        dk.spring_damping(x, v, springs, c, f)
        return probe_loss(f)
    grad_check(build, {"x": x, "v": v, "rest": rest, "k": k, "c": c}, dtypes={"x": VEC[d], "v": VEC[d]}, ndirs=1)


# ------------------------------------------------------------------ contact
def test_plane_contact(py):
    x = rng(18).standard_normal((8, 2))
    n = np.array([0.6, 0.8])
    f = ds.zeros(8, dtype=ds.vec2)
    dk.plane_contact(ds.array(x, dtype=ds.vec2), n, 0.1, 50.0, f)
    depth = np.maximum(0.1 - x @ n, 0)
    np.testing.assert_allclose(f.numpy(), 50 * depth[:, None] * n, rtol=1e-12, atol=1e-12)
    assert 0 < np.count_nonzero(depth) < 8

    def build(x):
        f = ds.zeros(8, dtype=ds.vec2, requires_grad=True)
        dk.plane_contact(x, n, 0.1, 50.0, f)
        return probe_loss(f)
    grad_check(build, {"x": x}, dtypes={"x": ds.vec2})


@pytest.mark.parametrize("d", [2, 3])
def test_neighbour_list_and_pair_contact(py, d):
    P, r = 40, 0.12
    x = rng(19 + d).random((P, d))
    nbr, nnbr = dk.neighbour_list(x, 2 * r, max_neighbours=P)
    D = np.linalg.norm(x[:, None] - x[None], axis=-1)
    for p in range(P):
        want = np.nonzero((D[p] < 2 * r) & (np.arange(P) != p))[0]
        assert nnbr.numpy()[p] == len(want)
        assert sorted(nbr.numpy()[p, :len(want)]) == list(want)
        assert np.all(nbr.numpy()[p, len(want):] == -1)
    f = ds.zeros(P, dtype=VEC[d])
    dk.pair_contact(ds.array(x, dtype=VEC[d]), nbr, nnbr, r, 100.0, f)
    ref = np.zeros_like(x)
    for p in range(P):
        for q in range(P):
            if p != q and D[p, q] < 2 * r:
                ref[p] += 100.0 * (2 * r - D[p, q]) * (x[p] - x[q]) / D[p, q]
    np.testing.assert_allclose(f.numpy(), ref, rtol=1e-12, atol=1e-12)
    assert np.abs(ref).max() > 0
    np.testing.assert_allclose(ref.sum(0), 0, atol=1e-10)          # action = reaction

    def build(x):
        f = ds.zeros(P, dtype=VEC[d], requires_grad=True)
        dk.pair_contact(x, nbr, nnbr, r, 100.0, f)
        return probe_loss(f)
    grad_check(build, {"x": x}, dtypes={"x": VEC[d]}, ndirs=1)


def test_neighbour_list_truncates_and_handles_bounds(py):
    x = np.zeros((5, 2)) + 0.5                    # five particles at one point
    nbr, nnbr = dk.neighbour_list(x, 0.1, max_neighbours=2)
    assert np.all(nnbr.numpy() == 4) and nbr.numpy().shape == (5, 2)
    x = rng(22).random((30, 2)) * 3 - 1
    nbr, nnbr = dk.neighbour_list(x, 0.5, max_neighbours=30, lo=[-1, -1], hi=[0, 0])   # grid smaller than the cloud
    D = np.linalg.norm(x[:, None] - x[None], axis=-1)
    np.testing.assert_array_equal(nnbr.numpy(), ((D < 0.5).sum(1) - 1))


def test_neighbour_search_inside_a_tape(py):
    # building cell lists is not differentiated: launches inside a Tape do not break backward
    x = ds.array(rng(23).random((10, 2)), dtype=ds.vec2, requires_grad=True)
    with ds.Tape() as tape:
        cell, count, start, order = (np.zeros(10, np.int32), np.zeros(5, np.int32), np.zeros(5, np.int32),
                                     np.zeros(10, np.int32))
        dims = np.array([2, 2], np.int32)
        dk.build_cells(x, np.zeros(2), 2.0, dims, cell, count, start, order)
        nbr, nnbr = np.zeros((10, 9), np.int32), np.zeros(10, np.int32)
        dk.find_neighbours(x, np.zeros(2), 2.0, dims, start, order, 0.5, nbr, nnbr)
        f = ds.zeros(10, dtype=ds.vec2, requires_grad=True)
        dk.pair_contact(x, nbr, nnbr, 0.25, 10.0, f)
        loss = probe_loss(f)
    tape.backward(loss)
    assert np.any(x.grad.numpy() != 0)
