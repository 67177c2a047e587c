"""difsci.kernels stencils, interpolation, advection and Poisson solvers against NumPy/SciPy
references, and their gradients against finite differences."""
from __future__ import annotations

import numpy as np
import pytest
from test_kernels_common import grad_check, probe_loss, rng

import difsci as ds
import difsci.kernels as dk

BCS = (dk.DIRICHLET, dk.NEUMANN, dk.PERIODIC)
BVAL = 0.3
H = 0.5


# ------------------------------------------------------------- references
def pad(u, bc, ncomp=0):
    """u with one ghost layer per side along its first u.ndim - ncomp axes."""
    w = [(1, 1)] * (u.ndim - ncomp) + [(0, 0)] * ncomp
    if bc == dk.DIRICHLET:
        return np.pad(u, w, mode="constant", constant_values=BVAL)
    return np.pad(u, w, mode="edge" if bc == dk.NEUMANN else "wrap")


def shift(p, axis, s, nd):
    """The interior of padded p shifted by s (-1, 0, +1) along axis."""
    sl = [slice(1, -1)] * nd + [slice(None)] * (p.ndim - nd)
    n = p.shape[axis] - 2
    sl[axis] = slice(1 + s, 1 + s + n)
    return p[tuple(sl)]


def lap_ref(u, bc):
    p, d = pad(u, bc), u.ndim
    return sum(shift(p, a, 1, d) + shift(p, a, -1, d) for a in range(d)) / H**2 - 2 * d * u / H**2


def grad_ref(u, bc):
    p, d = pad(u, bc), u.ndim
    g = [(shift(p, a, 1, d) - shift(p, a, -1, d)) / (2 * H) for a in range(d)]
    return g[0] if d == 1 else np.stack(g, axis=-1)


def ddx(v, bc, axis, comp):
    """Central difference of component comp of vector field v along axis."""
    d = v.ndim - 1
    p = pad(v, bc, 1)
    return (shift(p, axis, 1, d)[..., comp] - shift(p, axis, -1, d)[..., comp]) / (2 * H)


def div_ref(v, bc):
    return sum(ddx(v, bc, a, a) for a in range(v.ndim - 1))


def curl_ref(v, bc):
    if v.ndim == 3:
        return ddx(v, bc, 0, 1) - ddx(v, bc, 1, 0)
    return np.stack([ddx(v, bc, 1, 2) - ddx(v, bc, 2, 1), ddx(v, bc, 2, 0) - ddx(v, bc, 0, 2),
                     ddx(v, bc, 0, 1) - ddx(v, bc, 1, 0)], axis=-1)


VEC = {2: ds.vec2, 3: ds.vec3}
SHAPES = {1: [(7,), (1,), (2,)], 2: [(5, 4), (2, 1), (1, 3)], 3: [(4, 3, 5), (2, 2, 1)]}


# --------------------------------------------------------------- operators
@pytest.mark.parametrize("bc", BCS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_laplacian_and_gradient(py, nd, bc):
    lap = {1: dk.laplacian1d, 2: dk.laplacian2d, 3: dk.laplacian3d}[nd]
    grad = {1: dk.gradient1d, 2: dk.gradient2d, 3: dk.gradient3d}[nd]
    for shape in SHAPES[nd]:
        u = rng(nd).standard_normal(shape)
        out = np.zeros(shape)
        lap(u, out, H, bc, BVAL)
        np.testing.assert_allclose(out, lap_ref(u, bc), rtol=1e-12, atol=1e-12)
        g = ds.zeros(shape, dtype=VEC[nd]) if nd > 1 else ds.zeros(shape)
        grad(u, g, H, bc, BVAL)
        np.testing.assert_allclose(g.numpy(), grad_ref(u, bc), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bc", BCS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_divergence_and_curl(py, nd, bc):
    for shape in SHAPES[nd]:
        if nd == 1:
            v = rng(5).standard_normal(shape)
            out = np.zeros(shape)
            dk.divergence1d(v, out, H, bc, BVAL)
            np.testing.assert_allclose(out, grad_ref(v, bc), rtol=1e-12, atol=1e-12)
            continue
        v = rng(6).standard_normal(shape + (nd,))
        va = ds.array(v, dtype=VEC[nd])
        out = np.zeros(shape)
        (dk.divergence2d if nd == 2 else dk.divergence3d)(va, out, H, bc, BVAL)
        np.testing.assert_allclose(out, div_ref(v, bc), rtol=1e-12, atol=1e-12)
        c = ds.zeros(shape) if nd == 2 else ds.zeros(shape, dtype=ds.vec3)
        (dk.curl2d if nd == 2 else dk.curl3d)(va, c, H, bc, BVAL)
        np.testing.assert_allclose(c.numpy(), curl_ref(v, bc), rtol=1e-12, atol=1e-12)


def test_curl_of_gradient_and_divergence_of_curl_vanish_inside(py):
    x, y, z = np.meshgrid(*(np.linspace(0, 1, 6),) * 3, indexing="ij")
    u = np.sin(x) * np.cos(2 * y) + z**2 * x
    g = ds.zeros(u.shape, dtype=ds.vec3)
    dk.gradient3d(u, g, 0.2, dk.NEUMANN, 0.0)
    c = ds.zeros(u.shape, dtype=ds.vec3)
    dk.curl3d(g, c, 0.2, dk.NEUMANN, 0.0)
    assert np.abs(c.numpy()[1:-1, 1:-1, 1:-1]).max() < 1e-12      # discrete identity away from the walls


def test_bc_codes():
    assert dk.bc_code("Periodic") == dk.PERIODIC and dk.bc_code(0) == dk.DIRICHLET
    with pytest.raises(ValueError):
        dk.bc_code("robin")


@pytest.mark.parametrize("bc", BCS)
def test_operator_gradients_2d(py, bc):
    def build(u, v):
        lap, grad = ds.zeros(u.shape, requires_grad=True), ds.zeros(u.shape, dtype=ds.vec2, requires_grad=True)
        div, curl = ds.zeros(u.shape, requires_grad=True), ds.zeros(u.shape, requires_grad=True)
        dk.laplacian2d(u, lap, H, bc, BVAL)
        dk.gradient2d(u, grad, H, bc, BVAL)
        dk.divergence2d(v, div, H, bc, BVAL)
        dk.curl2d(v, curl, H, bc, BVAL)
        return probe_loss(lap, grad, div, curl)
    grad_check(build, {"u": rng(7).standard_normal((4, 3)), "v": rng(8).standard_normal((4, 3, 2))},
               dtypes={"v": ds.vec2})


@pytest.mark.parametrize("bc", [dk.DIRICHLET, dk.PERIODIC])
def test_operator_gradients_1d_3d(py, bc):
    def build(u1, u3, v3):
        outs = [ds.zeros(u1.shape, requires_grad=True) for _ in range(3)]
        dk.laplacian1d(u1, outs[0], H, bc, BVAL)
        dk.gradient1d(u1, outs[1], H, bc, BVAL)
        dk.divergence1d(u1, outs[2], H, bc, BVAL)
        l3, d3 = ds.zeros(u3.shape, requires_grad=True), ds.zeros(u3.shape, requires_grad=True)
        g3, c3 = (ds.zeros(u3.shape, dtype=ds.vec3, requires_grad=True) for _ in range(2))
        dk.laplacian3d(u3, l3, H, bc, BVAL)
        dk.gradient3d(u3, g3, H, bc, BVAL)
        dk.divergence3d(v3, d3, H, bc, BVAL)
        dk.curl3d(v3, c3, H, bc, BVAL)
        return probe_loss(*outs, l3, d3, g3, c3)
    grad_check(build, {"u1": rng(9).standard_normal(5), "u3": rng(10).standard_normal((3, 3, 3)),
                       "v3": rng(11).standard_normal((3, 3, 3, 3))}, dtypes={"v3": ds.vec3}, ndirs=1)


def test_laplacian2d_on_cpu_matches_and_differentiates(cpu):
    u = rng(12).standard_normal((40, 33))
    for bc in BCS:
        out = np.zeros_like(u)
        dk.laplacian2d(u, out, H, bc, BVAL)
        np.testing.assert_allclose(out, lap_ref(u, bc), rtol=1e-12, atol=1e-12)
    # the adjoint is the transpose: <L u, w> = <u, L^T w> (Dirichlet ghosts 0: L is linear)
    w = rng(13).standard_normal(u.shape)
    ua = ds.array(u, requires_grad=True)
    out = ds.zeros(u.shape, requires_grad=True)
    with ds.Tape() as tape:
        dk.laplacian2d(ua, out, H, dk.DIRICHLET, 0.0)
    tape.backward(out, w)
    assert abs(np.sum(out.numpy() * w) - np.sum(u * ua.grad.numpy())) < 1e-9 * np.abs(out.numpy() * w).sum()


# ------------------------------------------------------------ interpolation
def bilinear_ref(q, pts, bc):
    nx, ny = q.shape[:2]
    res = []
    for px, py in pts:
        if bc == dk.NEUMANN:
            px, py = np.clip(px, 0, nx - 1), np.clip(py, 0, ny - 1)
        i0, j0 = int(np.floor(px)), int(np.floor(py))
        tx, ty = px - i0, py - j0

        def val(i, j):
            if bc == dk.PERIODIC:
                return q[i % nx, j % ny]
            if bc == dk.NEUMANN:
                return q[min(max(i, 0), nx - 1), min(max(j, 0), ny - 1)]
            return q[i, j] if 0 <= i < nx and 0 <= j < ny else 0 * q[0, 0]
        res.append((1 - tx) * ((1 - ty) * val(i0, j0) + ty * val(i0, j0 + 1))
                   + tx * ((1 - ty) * val(i0 + 1, j0) + ty * val(i0 + 1, j0 + 1)))
    return np.array(res)


@pytest.mark.parametrize("bc", BCS)
def test_bilinear_sampling(py, bc):
    q = rng(14).standard_normal((5, 4))
    pts = rng(15).uniform(-2, 7, (40, 2))
    out = np.zeros(40)
    dk.sample2d(q, pts, bc, out)
    np.testing.assert_allclose(out, bilinear_ref(q, pts, bc), rtol=1e-12, atol=1e-12)

    def build(q, pts):
        o = ds.zeros(pts.shape[0], requires_grad=True)
        dk.sample2d(q, pts, bc, o)
        return probe_loss(o)
    grad_check(build, {"q": q, "pts": rng(16).uniform(-1.5, 5.5, (12, 2))})


def test_trilinear_sampling_against_scipy(py):
    interp = pytest.importorskip("scipy.interpolate")
    q = rng(17).standard_normal((4, 5, 3))
    pts = rng(18).uniform(0, 1, (30, 3)) * [3, 4, 2]
    out = np.zeros(30)
    dk.sample3d(q, pts, dk.NEUMANN, out)
    ref = interp.RegularGridInterpolator([np.arange(n) for n in q.shape], q)(pts)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_trilinear_sampling(py):
    q = rng(17).standard_normal((4, 5, 3))
    pts = rng(18).uniform(0, 1, (30, 3)) * [3, 4, 2]
    out = np.zeros(30)
    dk.sample3d(q, pts, dk.NEUMANN, out)
    i0 = np.floor(pts).astype(int)
    t = pts - i0
    ref = np.zeros(30)
    for corner in np.ndindex(2, 2, 2):
        idx = np.minimum(i0 + corner, np.array(q.shape) - 1)
        ref += np.prod(np.where(corner, t, 1 - t), axis=1) * q[idx[:, 0], idx[:, 1], idx[:, 2]]
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    # periodic: shifting every coordinate by a period changes nothing
    out2 = np.zeros(30)
    dk.sample3d(q, pts + [4, -5, 6], dk.PERIODIC, out2)
    out3 = np.zeros(30)
    dk.sample3d(q, pts, dk.PERIODIC, out3)
    np.testing.assert_allclose(out2, out3, rtol=1e-12, atol=1e-12)

    def build(q, pts):
        o = ds.zeros(pts.shape[0], requires_grad=True)
        dk.sample3d(q, pts, dk.PERIODIC, o)
        return probe_loss(o)
    grad_check(build, {"q": q, "pts": pts[:8] - 0.7}, ndirs=1)


# ---------------------------------------------------------------- advection
def test_semi_lagrangian_2d(py):
    q = rng(19).standard_normal((6, 5))
    vel = rng(20).standard_normal((6, 5, 2))
    out = np.zeros((6, 5))
    dk.semi_lagrangian2d(q, ds.array(vel, dtype=ds.vec2), out, 0.1, H, dk.PERIODIC)
    ii, jj = np.meshgrid(np.arange(6), np.arange(5), indexing="ij")
    pts = np.stack([ii - 0.1 / H * vel[..., 0], jj - 0.1 / H * vel[..., 1]], -1).reshape(-1, 2)
    np.testing.assert_allclose(out, bilinear_ref(q, pts, dk.PERIODIC).reshape(6, 5), rtol=1e-12, atol=1e-12)
    # a uniform integer shift is exact: q moves by one cell
    out2 = np.zeros((6, 5))
    dk.semi_lagrangian2d(q, ds.array(np.broadcast_to([H / 0.1, 0.0], (6, 5, 2)), dtype=ds.vec2), out2,
                         0.1, H, dk.PERIODIC)
    np.testing.assert_allclose(out2, np.roll(q, 1, axis=0), rtol=1e-12, atol=1e-12)

    def build(q, vel):
        o = ds.zeros(q.shape, requires_grad=True)
        dk.semi_lagrangian2d(q, vel, o, 0.1, H, dk.NEUMANN)
        return probe_loss(o)
    grad_check(build, {"q": q, "vel": vel}, dtypes={"vel": ds.vec2})


def test_semi_lagrangian_3d_and_vector_fields(py):
    q = rng(21).standard_normal((3, 4, 3, 3))
    vel = rng(22).standard_normal((3, 4, 3, 3))
    qa, va = ds.array(q, dtype=ds.vec3), ds.array(vel, dtype=ds.vec3)
    out = ds.zeros((3, 4, 3), dtype=ds.vec3)
    dk.semi_lagrangian3d(qa, va, out, 0.2, 1.0, dk.PERIODIC)
    # component 0 of the advected vector field equals the advected scalar component 0
    out0 = np.zeros((3, 4, 3))
    dk.semi_lagrangian3d(np.ascontiguousarray(q[..., 0]), va, out0, 0.2, 1.0, dk.PERIODIC)
    np.testing.assert_allclose(out.numpy()[..., 0], out0, rtol=1e-12, atol=1e-12)

    def build(q, vel):
        o = ds.zeros(q.shape, dtype=ds.vec3, requires_grad=True)
        dk.semi_lagrangian3d(q, vel, o, 0.2, 1.0, dk.DIRICHLET)
        return probe_loss(o)
    grad_check(build, {"q": q, "vel": vel}, dtypes={"q": ds.vec3, "vel": ds.vec3}, ndirs=1)


@pytest.mark.parametrize("bc", BCS)
def test_upwind(py, bc):
    q, u = rng(23).standard_normal(8), rng(24).standard_normal(8)
    out = np.zeros(8)
    dk.upwind1d(q, u, out, 0.1, H, bc, BVAL)
    p = pad(q, bc)
    ref = q - 0.1 / H * np.where(u > 0, u * (q - p[:-2]), u * (p[2:] - q))
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    q2, v2 = rng(25).standard_normal((5, 4)), rng(26).standard_normal((5, 4, 2))
    out2 = np.zeros((5, 4))
    dk.upwind2d(q2, ds.array(v2, dtype=ds.vec2), out2, 0.1, H, bc, BVAL)
    p2 = pad(q2, bc)
    ax = np.where(v2[..., 0] > 0, v2[..., 0] * (q2 - p2[:-2, 1:-1]), v2[..., 0] * (p2[2:, 1:-1] - q2))
    ay = np.where(v2[..., 1] > 0, v2[..., 1] * (q2 - p2[1:-1, :-2]), v2[..., 1] * (p2[1:-1, 2:] - q2))
    np.testing.assert_allclose(out2, q2 - 0.1 / H * (ax + ay), rtol=1e-12, atol=1e-12)

    def build(q, u, q2, v2):
        o, o2 = ds.zeros(q.shape, requires_grad=True), ds.zeros(q2.shape, requires_grad=True)
        dk.upwind1d(q, u, o, 0.1, H, bc, BVAL)
        dk.upwind2d(q2, v2, o2, 0.1, H, bc, BVAL)
        return probe_loss(o, o2)
    grad_check(build, {"q": q, "u": u, "q2": q2, "v2": v2}, dtypes={"v2": ds.vec2}, ndirs=1)


# -------------------------------------------------------------- Poisson
def poisson_matrix(n, m, bc):
    """The 5-point Laplacian (h = 1) with ghosts eliminated, as a dense matrix, and the Dirichlet ghost term."""
    N = n * m
    A = np.zeros((N, N))
    g = np.zeros(N)
    for i in range(n):
        for j in range(m):
            r = i * m + j
            A[r, r] -= 4
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                a, b = i + di, j + dj
                if 0 <= a < n and 0 <= b < m:
                    A[r, a * m + b] += 1
                elif bc == dk.PERIODIC:
                    A[r, (a % n) * m + b % m] += 1
                elif bc == dk.NEUMANN:
                    A[r, min(max(a, 0), n - 1) * m + min(max(b, 0), m - 1)] += 1
                else:
                    g[r] += BVAL
    return A, g


@pytest.mark.parametrize("method", ["jacobi", "rbgs"])
def test_poisson_converges_to_the_direct_solve(py, method):
    n, m = 6, 5
    rhs = rng(27).standard_normal((n, m))
    A, g = poisson_matrix(n, m, dk.DIRICHLET)
    want = np.linalg.solve(A, rhs.ravel() - g).reshape(n, m)
    p = dk.pressure_solve(rhs, 300 if method == "jacobi" else 120, 1.0, "dirichlet", BVAL, method=method)
    np.testing.assert_allclose(p.numpy()[-1], want, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("bc", BCS)
def test_one_sweep_matches_the_splitting(py, bc):
    n, m = 4, 6
    rhs, p0 = rng(28).standard_normal((n, m)), rng(29).standard_normal((n, m))
    A, g = poisson_matrix(n, m, bc)
    # a sweep: (sum of the four neighbour or ghost values - h^2 rhs) / 4, i.e. ((A + 4 I) p0 + ghosts - rhs) / 4
    jac4 = 0.25 * ((A + 4 * np.eye(n * m)) @ p0.ravel() + g - rhs.ravel()).reshape(n, m)
    out = np.zeros((n, m))
    dk.jacobi2d_step(p0, rhs, out, 1.0, bc, BVAL)
    np.testing.assert_allclose(out, jac4, rtol=1e-12, atol=1e-12)
    hist = np.zeros((2, n, m))
    hist[0] = p0
    dk.jacobi2d(hist, rhs, 1.0, bc, BVAL)
    np.testing.assert_allclose(hist[1], jac4, rtol=1e-12, atol=1e-12)

    def build(p0, rhs):
        o = ds.zeros(p0.shape, requires_grad=True)
        dk.jacobi2d_step(p0, rhs, o, 1.0, bc, BVAL)
        return probe_loss(o)
    grad_check(build, {"p0": p0, "rhs": rhs}, ndirs=1)


def test_red_black_sweep_by_hand(py):
    n, m = 4, 4
    rhs, p0 = rng(30).standard_normal((n, m)), rng(31).standard_normal((n, m))
    p = p0.copy()
    pp = np.pad(p, 1, mode="wrap")
    for colour in (0, 1):
        for i in range(n):
            for j in range(m):
                if (i + j) % 2 == colour:
                    pp = np.pad(p, 1, mode="wrap")
                    p[i, j] = 0.25 * (pp[i, j + 1] + pp[i + 2, j + 1] + pp[i + 1, j] + pp[i + 1, j + 2] - rhs[i, j])
    hist = np.zeros((2, n, m))
    hist[0] = p0
    dk.red_black_gauss_seidel2d(hist, rhs, 1.0, dk.PERIODIC, 0.0)
    np.testing.assert_allclose(hist[1], p, rtol=1e-12, atol=1e-12)


def test_jacobi_3d(py):
    n = 4
    rhs = rng(32).standard_normal((n, n, n))
    p = dk.pressure_solve(rhs, 400, 1.0, "dirichlet", 0.0)
    lap = np.zeros_like(rhs)
    dk.laplacian3d(np.ascontiguousarray(p.numpy()[-1]), lap, 1.0, dk.DIRICHLET, 0.0)
    np.testing.assert_allclose(lap, rhs, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("method", ["jacobi", "rbgs"])
def test_poisson_gradients(py, method):
    def build(rhs):
        p = ds.zeros((5,) + rhs.shape, requires_grad=True)
        (dk.jacobi2d if method == "jacobi" else dk.red_black_gauss_seidel2d)(p, rhs, 1.0, dk.NEUMANN, 0.0)
        return probe_loss(p[4])
    grad_check(build, {"rhs": rng(33).standard_normal((4, 4))})


def test_jacobi3d_gradient(py):
    def build(rhs):
        p = ds.zeros((3,) + rhs.shape, requires_grad=True)
        dk.jacobi3d(p, rhs, 1.0, dk.PERIODIC, 0.0)
        return probe_loss(p[2])
    grad_check(build, {"rhs": rng(34).standard_normal((3, 3, 2))}, ndirs=1)


def test_pressure_solve_arguments(py):
    with pytest.raises(ValueError):
        dk.pressure_solve(np.zeros((3, 4)), 2, bc="periodic", method="rbgs")
    with pytest.raises(ValueError):
        dk.pressure_solve(np.zeros((4, 4)), 2, method="sor")
