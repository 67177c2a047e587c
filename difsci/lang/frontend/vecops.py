"""Small vectors and matrices, scalarised: every operation maps component
expressions to component expressions.  ``bind(expr)`` stores an expression in
a fresh temporary (so a determinant used nine times is computed once).

Matrices are row-major: entry (r, c) of an n×m matrix is ``comps[r * m + c]``.
"""
from __future__ import annotations

from .. import build as B
from .. import types as T
from .values import VV


def vec(comps, dtype=None):
    st = dtype or _common(comps)
    return VV([B.cast(c, st) for c in comps], T.Vec(len(comps), st))


def mat(comps, n, m, dtype=None):
    st = dtype or _common(comps)
    return VV([B.cast(c, st) for c in comps], T.Mat(n, m, st))


def _common(comps):
    ty = comps[0].ty
    for c in comps[1:]:
        ty = T.promote(ty, c.ty)
    return ty.strong() if ty.is_float else T.f64


def like(v: VV, comps):
    """Components with ``v``'s shape (the scalar type follows the components)."""
    st = _common(comps)
    if v.is_mat:
        return mat(comps, v.dtype.n, v.dtype.m, st)
    return vec(comps, st)


def elementwise(op, a, b):
    """a op b with a scalar broadcast over a vector/matrix, or shapes equal."""
    if isinstance(a, VV) and isinstance(b, VV):
        if a.dtype.shape != b.dtype.shape:
            raise ValueError(f"shapes differ: {a.dtype} and {b.dtype}")
        return like(a, [B.binop(op, x, y) for x, y in zip(a.comps, b.comps)])
    if isinstance(a, VV):
        return like(a, [B.binop(op, x, b) for x in a.comps])
    return like(b, [B.binop(op, a, y) for y in b.comps])


def unary(fn, a: VV):
    return like(a, [fn(x) for x in a.comps])


def entry(M: VV, r, c):
    return M.comps[r * M.dtype.m + c]


def matmul(a: VV, b: VV):
    if a.is_mat and b.is_mat:
        n, k, m = a.dtype.n, a.dtype.m, b.dtype.m
        if b.dtype.n != k:
            raise ValueError(f"cannot multiply {a.dtype} @ {b.dtype}")
        return mat([_sum([B.mul(entry(a, r, i), entry(b, i, c)) for i in range(k)])
                    for r in range(n) for c in range(m)], n, m)
    if a.is_mat:   # M @ v
        if a.dtype.m != b.dtype.n:
            raise ValueError(f"cannot multiply {a.dtype} @ {b.dtype}")
        return vec([_sum([B.mul(entry(a, r, i), b.comps[i]) for i in range(a.dtype.m)]) for r in range(a.dtype.n)])
    if b.is_mat:   # v @ M
        if a.dtype.n != b.dtype.n:
            raise ValueError(f"cannot multiply {a.dtype} @ {b.dtype}")
        return vec([_sum([B.mul(a.comps[i], entry(b, i, c)) for i in range(b.dtype.n)]) for c in range(b.dtype.m)])
    return dot(a, b)


def _sum(terms):
    out = terms[0]
    for t in terms[1:]:
        out = B.add(out, t)
    return out


def dot(a: VV, b: VV):
    if a.dtype.shape != b.dtype.shape:
        raise ValueError(f"dot of {a.dtype} and {b.dtype}")
    return _sum([B.mul(x, y) for x, y in zip(a.comps, b.comps)])


def cross(a: VV, b: VV):
    if a.is_mat or b.is_mat or a.dtype.n != b.dtype.n or a.dtype.n not in (2, 3):
        raise ValueError(f"ds.cross takes two 2-D or two 3-D vectors, not {a.dtype} and {b.dtype}")
    if a.dtype.n == 2:
        return B.sub(B.mul(a.comps[0], b.comps[1]), B.mul(a.comps[1], b.comps[0]))
    (x1, y1, z1), (x2, y2, z2) = a.comps, b.comps
    return vec([B.sub(B.mul(y1, z2), B.mul(z1, y2)), B.sub(B.mul(z1, x2), B.mul(x1, z2)),
                B.sub(B.mul(x1, y2), B.mul(y1, x2))])


def norm(a: VV):
    return B.call("sqrt", _sum([B.mul(x, x) for x in a.comps]))


def normalize(a: VV, bind):
    inv = bind(B.div(B.const(1.0), norm(a)))
    return like(a, [B.mul(x, inv) for x in a.comps])


def outer(a: VV, b: VV):
    if a.is_mat or b.is_mat:
        raise ValueError(f"ds.outer takes two vectors, not {a.dtype} and {b.dtype}")
    return mat([B.mul(x, y) for x in a.comps for y in b.comps], a.dtype.n, b.dtype.n)


def _need_matrix(M: VV, what: str):
    if not M.is_mat:
        raise ValueError(f"ds.{what} takes a matrix, not a {M.dtype}")


def transpose(M: VV):
    _need_matrix(M, "transpose")
    n, m = M.dtype.n, M.dtype.m
    return mat([entry(M, r, c) for c in range(m) for r in range(n)], m, n)


def trace(M: VV):
    _need_matrix(M, "trace")
    return _sum([entry(M, i, i) for i in range(min(M.dtype.n, M.dtype.m))])


def identity(n, dtype=T.f64):
    return mat([B.Const(dtype, 1.0 if r == c else 0.0) for r in range(n) for c in range(n)], n, n, dtype)


def det(M: VV):
    _need_matrix(M, "det")
    n = M.dtype.n
    if n != M.dtype.m:
        raise ValueError(f"det of a non-square {M.dtype}")
    e = lambda r, c: entry(M, r, c)  # noqa: E731
    if n == 1:
        return e(0, 0)
    if n == 2:
        return B.sub(B.mul(e(0, 0), e(1, 1)), B.mul(e(0, 1), e(1, 0)))
    return _sum([B.mul(e(0, c), _cofactor(M, 0, c)) for c in range(n)])


def _minor(M, r, c):
    n = M.dtype.n
    comps = [entry(M, i, j) for i in range(n) if i != r for j in range(n) if j != c]
    return VV(comps, T.Mat(n - 1, n - 1, M.dtype.dtype))


def _cofactor(M, r, c):
    d = det(_minor(M, r, c))
    return d if (r + c) % 2 == 0 else B.neg(d)


def inverse(M: VV, bind):
    n = M.dtype.n
    if not M.is_mat or n != M.dtype.m:
        raise ValueError(f"ds.inverse takes a square matrix, not a {M.dtype}")
    cof = [bind(_cofactor(M, r, c)) if n > 2 else _cofactor(M, r, c) for r in range(n) for c in range(n)]
    d = _sum([B.mul(entry(M, 0, c), cof[c]) for c in range(n)])
    inv_d = bind(B.div(B.const(1.0), d))
    # inverse = adjugate / det, adjugate = transpose of the cofactor matrix
    return mat([B.mul(cof[c * n + r], inv_d) for r in range(n) for c in range(n)], n, n)


def polar_decompose2d(F: VV, bind):
    """F = R S, R the rotation nearest F, S symmetric."""
    x = B.add(entry(F, 0, 0), entry(F, 1, 1))
    y = B.sub(entry(F, 1, 0), entry(F, 0, 1))
    r = bind(B.call("sqrt", B.add(B.mul(x, x), B.mul(y, y))))
    safe = B.select(B.compare("eq", r, B.const(0.0)), B.const(1.0), r)
    c = bind(B.select(B.compare("eq", r, B.const(0.0)), B.const(1.0), B.div(x, safe)))
    s = bind(B.select(B.compare("eq", r, B.const(0.0)), B.const(0.0), B.div(y, safe)))
    R = mat([c, B.neg(s), s, c], 2, 2)
    S = matmul(transpose(R), F)
    S = mat([bind(v) for v in S.comps], 2, 2)
    return R, S


def svd2d(F: VV, bind):
    """F = U diag(sigma) V^T with U, V rotations and sigma[0] >= |sigma[1]|."""
    R, S = polar_decompose2d(F, bind)
    s00, s01, s11 = entry(S, 0, 0), B.mul(B.const(0.5), B.add(entry(S, 0, 1), entry(S, 1, 0))), entry(S, 1, 1)
    tau = bind(B.mul(B.const(0.5), B.sub(s00, s11)))
    w = bind(B.call("sqrt", B.add(B.mul(tau, tau), B.mul(s01, s01))))
    den = bind(B.select(B.compare("gt", tau, B.const(0.0)), B.add(tau, w), B.sub(tau, w)))
    t = bind(B.select(B.compare("eq", den, B.const(0.0)), B.const(0.0), B.div(s01, B.select(
        B.compare("eq", den, B.const(0.0)), B.const(1.0), den))))
    cs = bind(B.div(B.const(1.0), B.call("sqrt", B.add(B.mul(t, t), B.const(1.0)))))
    sn = bind(B.neg(B.mul(t, cs)))
    two_cs_s01 = B.mul(B.mul(B.const(2.0), B.mul(cs, sn)), s01)
    sig0 = bind(B.add(B.sub(B.mul(B.mul(cs, cs), s00), two_cs_s01), B.mul(B.mul(sn, sn), s11)))
    sig1 = bind(B.add(B.add(B.mul(B.mul(sn, sn), s00), two_cs_s01), B.mul(B.mul(cs, cs), s11)))
    swap = bind(B.compare("lt", sig0, sig1))
    sigma = vec([B.select(swap, sig1, sig0), B.select(swap, sig0, sig1)])
    # columns of V: (cs, -sn) and (sn, cs); swapped, (sn, cs) and (-cs, sn) keep det V = 1
    V = mat([B.select(swap, sn, cs), B.select(swap, B.neg(cs), sn),
             B.select(swap, cs, B.neg(sn)), B.select(swap, sn, cs)], 2, 2)
    V = mat([bind(v) for v in V.comps], 2, 2)
    U = matmul(R, V)
    return U, sigma, V
