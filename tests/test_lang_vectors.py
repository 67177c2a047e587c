"""Small vectors and matrices (API.md §3): constructors, arithmetic, linear
algebra, decompositions, component access, arrays of vectors, float32 twins —
each against NumPy."""
from __future__ import annotations

import numpy as np
import pytest

import difsci as ds

from conftest import assert_close

vec2f = ds.vec(2, ds.f32)          # module-level types: usable as types and constructors
mat23 = ds.mat(2, 3, np.float64)


def rng(seed=0):
    return np.random.default_rng(seed)


# ============================================================ constructors
@ds.kernel
def k_construct(s: ds.f64[:], v2: ds.vec2[:], v3: ds.vec3[:], v4: ds.vec4[:], m2: ds.mat2[:], m3: ds.mat3[:],
                m4: ds.mat4[:], r23: ds.f64[:, :, :]):
    for i in range(s.shape[0]):
        a = s[i]
        v2[i] = ds.vec2(a, 2.0 * a)
        v3[i] = ds.vec3(ds.vec2(a, 1.0), -a)        # a vector spliced into a constructor
        v4[i] = ds.vec4(a)                          # one value broadcast to every component
        m2[i] = ds.mat2(a, 1.0, 2.0, 3.0)           # row-major
        m3[i] = ds.mat3(1.0, 2.0, 3.0, 4.0, a, 6.0, 7.0, 8.0, 9.0) + ds.identity(3)
        m4[i] = ds.identity(4) * a + ds.zeros_like(ds.mat4(1.0))
        r = mat23(1.0, 2.0, 3.0, 4.0, 5.0, a)
        for p in range(2):
            for q in range(3):
                r23[i, p, q] = r[p, q]


def test_constructors(backend):
    s = np.array([0.5, -1.5, 2.0])
    n = s.size
    v2, v3, v4 = ds.zeros(n, dtype=ds.vec2), ds.zeros(n, dtype=ds.vec3), ds.zeros(n, dtype=ds.vec4)
    m2, m3, m4 = ds.zeros(n, dtype=ds.mat2), ds.zeros(n, dtype=ds.mat3), ds.zeros(n, dtype=ds.mat4)
    r23 = ds.zeros((n, 2, 3))
    k_construct(s, v2, v3, v4, m2, m3, m4, r23)
    assert v2.shape == (n,) and v2.numpy().shape == (n, 2) and m3.numpy().shape == (n, 3, 3)
    for i, a in enumerate(s):
        assert_close(v2.numpy()[i], [a, 2 * a])
        assert_close(v3.numpy()[i], [a, 1, -a])
        assert_close(v4.numpy()[i], [a] * 4)
        assert_close(m2.numpy()[i], [[a, 1], [2, 3]])
        assert_close(m3.numpy()[i], np.array([[1, 2, 3], [4, a, 6], [7, 8, 9]]) + np.eye(3))
        assert_close(m4.numpy()[i], a * np.eye(4))
        assert_close(r23.numpy()[i], [[1, 2, 3], [4, 5, a]])


def test_constructors_from_python():
    assert_close(ds.vec3(1, 2, 3), [1.0, 2.0, 3.0])
    assert ds.vec2f(1, 2).dtype == np.float32 and vec2f(1, 2).dtype == np.float32
    assert_close(ds.mat2(1, 2, 3, 4), [[1, 2], [3, 4]])
    assert ds.mat3f(np.eye(3)).dtype == np.float32
    assert mat23(*range(6)).shape == (2, 3)
    assert ds.vec(3, np.float32) == ds.vec3f and ds.mat(2, ds.f64) == ds.mat2
    with pytest.raises(ValueError):
        ds.vec3(1, 2)


# ============================================================ arithmetic
@ds.kernel
def k_arith(a: ds.vec3[:], b: ds.vec3[:], s: ds.f64[:], out: ds.vec3[:, :]):
    for i in range(a.shape[0]):
        u = a[i]
        v = b[i]
        out[i, 0] = u + v
        out[i, 1] = u - v
        out[i, 2] = u * v
        out[i, 3] = u / v
        out[i, 4] = s[i] * u + 1.0
        out[i, 5] = u / s[i] - s[i]
        out[i, 6] = 2.0 - u
        out[i, 7] = -u
        w = u
        w += v
        w *= 0.5
        out[i, 8] = w


def test_vector_arithmetic(backend):
    r = rng(1)
    a, b = r.standard_normal((20, 3)), r.uniform(0.5, 2, (20, 3))
    s = r.uniform(0.5, 2, 20)
    out = ds.zeros((20, 9), dtype=ds.vec3)
    k_arith(ds.array(a, dtype=ds.vec3), ds.array(b, dtype=ds.vec3), s, out)
    S = s[:, None]
    want = np.stack([a + b, a - b, a * b, a / b, S * a + 1, a / S - S, 2 - a, -a, (a + b) * 0.5], axis=1)
    assert_close(out.numpy(), want)


@ds.kernel
def k_linalg(a: ds.vec3[:], b: ds.vec3[:], A: ds.mat3[:], B: ds.mat3[:], s: ds.f64[:, :], v: ds.vec3[:, :],
             M: ds.mat3[:, :]):
    for i in range(a.shape[0]):
        x = a[i]
        y = b[i]
        P = A[i]
        Q = B[i]
        s[i, 0] = ds.dot(x, y)
        s[i, 1] = ds.norm(x)
        s[i, 2] = ds.norm(P)                       # Frobenius
        s[i, 3] = ds.trace(P)
        s[i, 4] = ds.det(P)
        s[i, 5] = x @ y
        s[i, 6] = ds.cross(ds.vec2(x.x, x.y), ds.vec2(y.x, y.y))
        v[i, 0] = ds.cross(x, y)
        v[i, 1] = ds.normalize(x)
        v[i, 2] = P @ x
        v[i, 3] = x @ P
        M[i, 0] = P @ Q
        M[i, 1] = ds.outer(x, y)
        M[i, 2] = ds.transpose(P)
        M[i, 3] = P.T @ Q.T
        M[i, 4] = ds.inverse(P)
        M[i, 5] = ds.identity(3) - P * 2.0


def test_linear_algebra(backend):
    r = rng(2)
    n = 24
    a, b = r.standard_normal((n, 3)), r.standard_normal((n, 3))
    A, B = r.standard_normal((n, 3, 3)) + 3 * np.eye(3), r.standard_normal((n, 3, 3))
    s, v, M = ds.zeros((n, 7)), ds.zeros((n, 4), dtype=ds.vec3), ds.zeros((n, 6), dtype=ds.mat3)
    k_linalg(ds.array(a, dtype=ds.vec3), ds.array(b, dtype=ds.vec3), ds.array(A, dtype=ds.mat3),
             ds.array(B, dtype=ds.mat3), s, v, M)
    dot = np.einsum("ij,ij->i", a, b)
    want_s = np.stack([dot, np.linalg.norm(a, axis=1), np.linalg.norm(A, axis=(1, 2)), np.trace(A, axis1=1, axis2=2),
                       np.linalg.det(A), dot, a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]], axis=1)
    assert_close(s.numpy(), want_s, rtol=1e-11, atol=1e-12)
    want_v = np.stack([np.cross(a, b), a / np.linalg.norm(a, axis=1)[:, None], np.einsum("nij,nj->ni", A, a),
                       np.einsum("nj,nji->ni", a, A)], axis=1)
    assert_close(v.numpy(), want_v, rtol=1e-11, atol=1e-12)
    At, Bt = A.transpose(0, 2, 1), B.transpose(0, 2, 1)
    want_M = np.stack([A @ B, np.einsum("ni,nj->nij", a, b), At, At @ Bt, np.linalg.inv(A), np.eye(3) - 2 * A], axis=1)
    assert_close(M.numpy(), want_M, rtol=1e-10, atol=1e-11)


@ds.kernel
def k_inverse(m2: ds.mat2[:], m4: ds.mat4[:], o2: ds.mat2[:], o4: ds.mat4[:], d: ds.f64[:, :]):
    for i in range(m2.shape[0]):
        o2[i] = ds.inverse(m2[i])
        o4[i] = ds.inverse(m4[i])
        d[i, 0] = ds.det(m2[i])
        d[i, 1] = ds.det(m4[i])


def test_inverse_and_det_2_and_4(py):
    r = rng(3)
    n = 16
    A2 = r.standard_normal((n, 2, 2)) + 2 * np.eye(2)
    A4 = r.standard_normal((n, 4, 4)) + 4 * np.eye(4)
    o2, o4, d = ds.zeros(n, dtype=ds.mat2), ds.zeros(n, dtype=ds.mat4), ds.zeros((n, 2))
    k_inverse(ds.array(A2, dtype=ds.mat2), ds.array(A4, dtype=ds.mat4), o2, o4, d)
    assert_close(o2.numpy(), np.linalg.inv(A2), rtol=1e-10, atol=1e-12)
    assert_close(o4.numpy(), np.linalg.inv(A4), rtol=1e-9, atol=1e-11)
    assert_close(d.numpy(), np.stack([np.linalg.det(A2), np.linalg.det(A4)], axis=1), rtol=1e-10, atol=1e-12)


# ============================================================ decompositions
@ds.kernel
def k_decomp(F: ds.mat2[:], R: ds.mat2[:], S: ds.mat2[:], U: ds.mat2[:], sig: ds.vec2[:], V: ds.mat2[:]):
    for i in range(F.shape[0]):
        r, s = ds.polar_decompose2d(F[i])
        R[i] = r
        S[i] = s
        u, sigma, v = ds.svd2d(F[i])
        U[i] = u
        sig[i] = sigma
        V[i] = v


def _decomp_cases():
    r = rng(4)
    rand = list(r.standard_normal((40, 2, 2)))
    special = [np.zeros((2, 2)), np.eye(2), 2 * np.eye(2), -np.eye(2), np.diag([1.0, -1.0]), np.diag([-3.0, 0.5]),
               np.array([[0.0, 0.0], [0.0, 1.0]]), np.array([[0.0, -1.0], [1.0, 0.0]]),
               np.array([[1.0, 2.0], [2.0, 4.0]]), np.array([[1.0, 1e-9], [0.0, 1.0]]), np.diag([2.0, 3.0])]
    return np.array(rand + special)


def _is_rotation(Q, atol=1e-10):
    n = Q.shape[0]
    np.testing.assert_allclose(Q.transpose(0, 2, 1) @ Q, np.broadcast_to(np.eye(2), (n, 2, 2)), atol=atol)
    np.testing.assert_allclose(np.linalg.det(Q), np.ones(n), atol=atol)


def test_polar_and_svd(backend):
    F = _decomp_cases()
    n = len(F)
    R, S, U, V = (ds.zeros(n, dtype=ds.mat2) for _ in range(4))
    sig = ds.zeros(n, dtype=ds.vec2)
    k_decomp(ds.array(F, dtype=ds.mat2), R, S, U, sig, V)
    R, S, U, V, sig = R.numpy(), S.numpy(), U.numpy(), V.numpy(), sig.numpy()
    _is_rotation(R)
    np.testing.assert_allclose(S, S.transpose(0, 2, 1), atol=1e-10)
    np.testing.assert_allclose(R @ S, F, atol=1e-10)
    _is_rotation(U)
    _is_rotation(V)
    D = np.zeros((n, 2, 2))
    D[:, 0, 0], D[:, 1, 1] = sig[:, 0], sig[:, 1]
    np.testing.assert_allclose(U @ D @ V.transpose(0, 2, 1), F, atol=1e-9)
    assert np.all(sig[:, 0] >= np.abs(sig[:, 1]) - 1e-12)
    detF = np.linalg.det(F)
    assert np.all(sig[detF < -1e-12, 1] < 0)
    assert np.all(sig[detF > 1e-12, 1] > 0)
    np.testing.assert_allclose(np.sort(np.abs(sig), axis=1)[:, ::-1], np.linalg.svd(F, compute_uv=False), atol=1e-9)


# ============================================================ component access
@ds.kernel
def k_components(p: ds.vec4[:], A: ds.mat3[:], out: ds.f64[:, :]):
    for i in range(p.shape[0]):
        v = p[i]
        M = A[i]
        out[i, 0] = v.x + 10.0 * v.y + 100.0 * v.z + 1000.0 * v.w
        s = 0.0
        for k in range(4):                       # run-time component index
            s += v[k] * (k + 1)
        out[i, 1] = s
        t = 0.0
        for r in range(3):
            for c in range(3):
                t += M[r, c] * (3 * r + c)
        out[i, 2] = t
        k2 = i % 4
        out[i, 3] = v[k2]
        row = M[i % 3]                           # a row of a matrix
        out[i, 4] = row.x + row.z
        N = M
        N[i % 3, 1] = -1.0                       # run-time entry write
        out[i, 5] = ds.trace(N) + N[0, 1] + N[1, 1] + N[2, 1]
        w = v
        w[k2] = 0.0
        out[i, 6] = w.x + w.y + w.z + w.w


def test_component_access(backend):
    r = rng(5)
    n = 12
    P, A = r.standard_normal((n, 4)), r.standard_normal((n, 3, 3))
    out = ds.zeros((n, 7))
    k_components(ds.array(P, dtype=ds.vec4), ds.array(A, dtype=ds.mat3), out)
    weights = np.arange(9).reshape(3, 3)
    for i in range(n):
        v, M = P[i], A[i]
        N = M.copy()
        N[i % 3, 1] = -1
        w = v.copy()
        w[i % 4] = 0
        want = [v @ [1, 10, 100, 1000], v @ [1, 2, 3, 4], (M * weights).sum(), v[i % 4],
                M[i % 3, 0] + M[i % 3, 2], np.trace(N) + N[:, 1].sum(), w.sum()]
        assert_close(out.numpy()[i], want)


# ============================================================ arrays of vectors
@ds.kernel
def k_vec_arrays(x: ds.vec2[:], F: ds.mat2[:, :], y: ds.vec2[:]):
    for i in range(x.shape[0]):
        y[i] = F[i, 0] @ x[i] + F[i, 1] @ x[i]
        y[i] += ds.vec2(1.0, -1.0)


def test_arrays_of_vectors(backend):
    r = rng(6)
    n = 10
    xs, Fs = r.standard_normal((n, 2)), r.standard_normal((n, 2, 2, 2))
    x = ds.array(xs, dtype=ds.vec2)
    F = ds.array(Fs, dtype=ds.mat2)
    assert x.shape == (n,) and x.dtype == ds.vec2 and F.shape == (n, 2) and F.dtype == ds.mat2
    assert x.numpy().shape == (n, 2) and F.numpy().shape == (n, 2, 2, 2)
    y = ds.zeros(n, dtype=ds.vec2)
    k_vec_arrays(x, F, y)
    want = np.einsum("nij,nj->ni", Fs[:, 0] + Fs[:, 1], xs) + [1, -1]
    assert_close(y.numpy(), want)
    # plain numpy arrays are accepted for annotated vector arrays too
    y2 = np.zeros((n, 2))
    k_vec_arrays(xs, Fs, y2)
    assert_close(y2, want)


# ============================================================ float32 twins
@ds.kernel
def k_f32(x: ds.vec3f[:], A: ds.mat3f[:], y: ds.vec3f[:], s: ds.f32[:]):
    for i in range(x.shape[0]):
        v = A[i] @ x[i] * 2.0 + ds.vec3f(1.0, 2.0, 3.0)
        y[i] = ds.normalize(v)
        s[i] = ds.norm(v) + ds.det(A[i])


def test_float32_twins(backend):
    r = rng(7)
    n = 16
    xs = r.standard_normal((n, 3)).astype(np.float32)
    As = r.standard_normal((n, 3, 3)).astype(np.float32)
    x, A = ds.array(xs, dtype=ds.vec3f), ds.array(As, dtype=ds.mat3f)
    assert x.numpy().dtype == np.float32
    y, s = ds.zeros(n, dtype=ds.vec3f), ds.zeros(n, dtype=np.float32)
    k_f32(x, A, y, s)
    v = np.einsum("nij,nj->ni", As.astype(np.float64), xs.astype(np.float64)) * 2 + [1, 2, 3]
    assert_close(y.numpy(), v / np.linalg.norm(v, axis=1)[:, None], np.float32, rtol=1e-4, atol=1e-5)
    assert_close(s.numpy(), np.linalg.norm(v, axis=1) + np.linalg.det(As.astype(np.float64)), np.float32,
                 rtol=1e-4, atol=1e-4)
    fn = k_f32.ir(x, A, y, s)
    assert fn.locals["v_0"] == ds.f32


# ============================================================ funcs on vectors
@ds.func
def reflect(d: ds.vec3, n: ds.vec3) -> ds.vec3:
    return d - 2.0 * ds.dot(d, n) * n


@ds.func
def rot_and_scale(theta: float, v: ds.vec2):
    c = ds.cos(theta)
    s = ds.sin(theta)
    R = ds.mat2(c, -s, s, c)
    return R, R @ v, ds.norm(v)


def test_vector_funcs_from_python(py):
    d, n = np.array([1.0, -2.0, 0.5]), np.array([0.0, 1.0, 0.0])
    assert_close(reflect(d, n), [1.0, 2.0, 0.5])
    R, w, nv = rot_and_scale(np.pi / 2, np.array([1.0, 0.0]))
    assert R.shape == (2, 2) and w.shape == (2,)
    assert_close(R, [[0, -1], [1, 0]], atol=1e-15)
    assert_close(w, [0.0, 1.0], atol=1e-15)
    assert_close(nv, 1.0)


@ds.kernel
def k_vec_funcs(d: ds.vec3[:], n: ds.vec3[:], out: ds.vec3[:], theta: float, out2: ds.vec2[:]):
    for i in range(d.shape[0]):
        out[i] = reflect(d[i], ds.normalize(n[i]))
        R, w, nv = rot_and_scale(theta * i, ds.vec2(1.0, 1.0))
        out2[i] = w / nv + R[0] * 0.0


def test_vector_funcs_in_kernels(backend):
    r = rng(8)
    D, Nn = r.standard_normal((8, 3)), r.standard_normal((8, 3))
    out, out2 = ds.zeros(8, dtype=ds.vec3), ds.zeros(8, dtype=ds.vec2)
    k_vec_funcs(ds.array(D, dtype=ds.vec3), ds.array(Nn, dtype=ds.vec3), out, 0.3, out2)
    nh = Nn / np.linalg.norm(Nn, axis=1)[:, None]
    assert_close(out.numpy(), D - 2 * np.einsum("ij,ij->i", D, nh)[:, None] * nh, rtol=1e-12, atol=1e-12)
    th = 0.3 * np.arange(8)
    want2 = np.stack([np.cos(th) - np.sin(th), np.sin(th) + np.cos(th)], axis=1) / np.sqrt(2)
    assert_close(out2.numpy(), want2, rtol=1e-12, atol=1e-12)


# ============================================================ components of array elements
@ds.kernel
def k_element_components(p: ds.vec3[:], M: ds.mat2[:], idx: ds.i64[:]):
    for i in range(idx.shape[0]):
        p[idx[i]].y += 1.0                     # atomic: indices repeat
        p[i % 2][2] -= 2.0
        p[i][0] = 7.0 * i
        M[i][0, 1] = 5.0
        M[i][1, i % 2] *= 3.0


def test_component_writes_into_array_elements(backend):
    n = 6
    idx = np.array([0, 0, 1, 3, 3, 3])
    p = ds.zeros(n, dtype=ds.vec3)
    M = ds.array(np.ones((n, 2, 2)), dtype=ds.mat2)
    k_element_components(p, M, idx)
    want = np.zeros((n, 3))
    np.add.at(want[:, 1], idx, 1.0)
    np.add.at(want[:, 2], np.arange(n) % 2, -2.0)
    want[:, 0] = 7.0 * np.arange(n)
    assert_close(p.numpy(), want)
    wm = np.ones((n, 2, 2))
    wm[:, 0, 1] = 5.0
    wm[np.arange(n), 1, np.arange(n) % 2] *= 3.0
    assert_close(M.numpy(), wm)
