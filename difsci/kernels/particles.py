"""Particles: MLS-MPM/APIC grid transfers, cell-list neighbour search, spring and contact forces.

Positions and velocities are arrays of ``ds.vec2``/``ds.vec3`` (``(P,)``,
from numpy ``(P, 2)``/``(P, 3)`` via ``ds.array(a, dtype=ds.vec2)``); grids
are ``(nx, ny[, nz])`` arrays of numbers (mass) or vectors (momentum,
velocity) with node spacing ``dx``, node ``(i, j)`` at position
``(i * dx, j * dx)``.

Transfers use quadratic B-spline weights over the 3x3 (3x3x3) nodes around a
particle.  Particles must stay at least ``dx`` away from the grid's edges
(the usual padding of MPM grids): nodes are not clamped.

Force kernels *accumulate* into ``f`` (zero it first), so several force
kernels can add into one array.
"""
from __future__ import annotations

import numpy as np

import difsci as ds


# ------------------------------------------------------------ B-spline weights
@ds.func
def bspline_weights(fx):
    """Quadratic B-spline weights (w0, w1, w2) of nodes base, base+1, base+2.

    ``fx = X / dx - base`` with ``base = floor(X / dx - 0.5)`` (a vector, so
    each weight is a vector of per-axis weights); 0.5 <= fx < 1.5.
    """
    w0 = 0.5 * (1.5 - fx) * (1.5 - fx)
    w1 = 0.75 - (fx - 1.0) * (fx - 1.0)
    w2 = 0.5 * (fx - 0.5) * (fx - 0.5)
    return w0, w1, w2


@ds.func
def _pick(w0, w1, w2, a: int):
    """w0, w1 or w2 for a compile-time a (folded away inside ds.static loops)."""
    return w0 if a == 0 else (w1 if a == 1 else w2)


@ds.func
def mls_affine(stress, C, mass, vol, dt, dx):
    """MLS-MPM momentum affine matrix: -dt vol (4 / dx^2) stress + mass C (for p2g's ``affine``)."""
    return (-dt * vol * 4.0 / (dx * dx)) * stress + mass * C


# --------------------------------------------------------------------- P2G
@ds.kernel
def p2g2d(x, v, affine, mass, dx: float, grid_m, grid_mv):
    """Scatter mass and APIC/MLS-MPM momentum from particles to a 2-D grid.

    grid_m[node] += w m_p;  grid_mv[node] += w (m_p v_p + affine_p @ (x_node - x_p)).
    x, v: (P,) vec2; affine: (P,) mat2 (APIC: m_p C_p; MLS-MPM: :func:`mls_affine`);
    mass: (P,) floats; grid_m: (nx, ny) floats; grid_mv: (nx, ny) vec2.
    """
    inv_dx = 1.0 / dx
    for p in range(x.shape[0]):
        X = x[p] * inv_dx
        base = ds.floor(X - 0.5)
        fx = X - base
        w0, w1, w2 = bspline_weights(fx)
        bi = int(base[0])
        bj = int(base[1])
        mv = mass[p] * v[p]
        for a in ds.static(range(3)):
            for b in ds.static(range(3)):
                w = _pick(w0, w1, w2, a)[0] * _pick(w0, w1, w2, b)[1]
                dpos = (ds.vec2(a, b) - fx) * dx
                grid_m[bi + a, bj + b] += w * mass[p]
                grid_mv[bi + a, bj + b] += w * (mv + affine[p] @ dpos)


@ds.kernel
def p2g3d(x, v, affine, mass, dx: float, grid_m, grid_mv):
    """3-D :func:`p2g2d`.  x, v: (P,) vec3; affine: (P,) mat3; mass: (P,);
    grid_m: (nx, ny, nz) floats; grid_mv: (nx, ny, nz) vec3."""
    inv_dx = 1.0 / dx
    for p in range(x.shape[0]):
        X = x[p] * inv_dx
        base = ds.floor(X - 0.5)
        fx = X - base
        w0, w1, w2 = bspline_weights(fx)
        bi = int(base[0])
        bj = int(base[1])
        bk = int(base[2])
        mv = mass[p] * v[p]
        for a in ds.static(range(3)):
            for b in ds.static(range(3)):
                for c in ds.static(range(3)):
                    w = _pick(w0, w1, w2, a)[0] * _pick(w0, w1, w2, b)[1] * _pick(w0, w1, w2, c)[2]
                    dpos = (ds.vec3(a, b, c) - fx) * dx
                    grid_m[bi + a, bj + b, bk + c] += w * mass[p]
                    grid_mv[bi + a, bj + b, bk + c] += w * (mv + affine[p] @ dpos)


# --------------------------------------------------------------------- G2P
@ds.kernel
def g2p2d(x, grid_v, dx: float, v_out, C_out):
    """Gather velocity and the APIC affine matrix from a 2-D grid.

    v_p = sum w v_node;  C_p = (4 / dx^2) sum w v_node (x_node - x_p)^T.
    x: (P,) vec2; grid_v: (nx, ny) vec2; v_out: (P,) vec2; C_out: (P,) mat2.
    """
    inv_dx = 1.0 / dx
    for p in range(x.shape[0]):
        X = x[p] * inv_dx
        base = ds.floor(X - 0.5)
        fx = X - base
        w0, w1, w2 = bspline_weights(fx)
        bi = int(base[0])
        bj = int(base[1])
        nv = ds.zeros_like(x[p])
        nC = ds.outer(nv, nv)
        for a in ds.static(range(3)):
            for b in ds.static(range(3)):
                w = _pick(w0, w1, w2, a)[0] * _pick(w0, w1, w2, b)[1]
                gv = grid_v[bi + a, bj + b]
                nv = nv + w * gv
                nC = nC + (4.0 * inv_dx * w) * ds.outer(gv, ds.vec2(a, b) - fx)
        v_out[p] = nv
        C_out[p] = nC


@ds.kernel
def g2p3d(x, grid_v, dx: float, v_out, C_out):
    """3-D :func:`g2p2d`.  x: (P,) vec3; grid_v: (nx, ny, nz) vec3; v_out: (P,) vec3; C_out: (P,) mat3."""
    inv_dx = 1.0 / dx
    for p in range(x.shape[0]):
        X = x[p] * inv_dx
        base = ds.floor(X - 0.5)
        fx = X - base
        w0, w1, w2 = bspline_weights(fx)
        bi = int(base[0])
        bj = int(base[1])
        bk = int(base[2])
        nv = ds.zeros_like(x[p])
        nC = ds.outer(nv, nv)
        for a in ds.static(range(3)):
            for b in ds.static(range(3)):
                for c in ds.static(range(3)):
                    w = _pick(w0, w1, w2, a)[0] * _pick(w0, w1, w2, b)[1] * _pick(w0, w1, w2, c)[2]
                    gv = grid_v[bi + a, bj + b, bk + c]
                    nv = nv + w * gv
                    nC = nC + (4.0 * inv_dx * w) * ds.outer(gv, ds.vec3(a, b, c) - fx)
        v_out[p] = nv
        C_out[p] = nC


# ----------------------------------------------------------------- springs
@ds.func
def spring_force(xa, xb, rest, k):
    """Force on the particle at ``xa`` from a spring to ``xb``: k (|d| - rest) d / |d|, d = xb - xa."""
    d = xb - xa
    length = ds.norm(d)
    return (k * (length - rest) / length) * d


@ds.kernel
def spring_forces(x, springs, rest, k, f):
    """f[a] += spring force, f[b] -= it, for each spring s = (a, b) = springs[s].

    x, f: (P,) vec2/vec3; springs: (S, 2) ints; rest, k: (S,) rest lengths and stiffnesses.
    """
    for s in range(springs.shape[0]):
        a = springs[s, 0]
        b = springs[s, 1]
        fs = spring_force(x[a], x[b], rest[s], k[s])
        f[a] += fs
        f[b] -= fs


@ds.func
def dashpot_force(xa, xb, va, vb, c):
    """Force on the particle at ``xa`` from a dashpot to ``xb``: c ((vb - va) . n) n, n = (xb - xa) / |xb - xa|."""
    n = ds.normalize(xb - xa)
    return (c * ds.dot(vb - va, n)) * n


@ds.kernel
def spring_damping(x, v, springs, c, f):
    """Dashpots along the springs: f[a] += c (v_rel . n) n, f[b] -= it (n = unit a->b, v_rel = v[b] - v[a]).

    x, v, f: (P,) vectors; springs: (S, 2) ints; c: (S,) damping coefficients.
    """
    for s in range(springs.shape[0]):
        a = springs[s, 0]
        b = springs[s, 1]
        fs = dashpot_force(x[a], x[b], v[a], v[b], c[s])
        f[a] += fs
        f[b] -= fs


@ds.kernel
def spring_energy(x, springs, rest, k, energy):
    """energy += sum_s k_s / 2 (|x_b - x_a| - rest_s)^2.  energy: ()."""
    for s in range(springs.shape[0]):
        d = ds.norm(x[springs[s, 1]] - x[springs[s, 0]]) - rest[s]
        energy[None] += 0.5 * k[s] * d * d


# ---------------------------------------------------------- contact (penalty)
@ds.kernel
def plane_contact(x, normal, offset: float, k: float, f):
    """Penalty force from the half-space dot(normal, x) >= offset: f[p] += k * depth * normal.

    depth = max(0, offset - dot(normal, x[p])); normal: (D,) floats, a unit
    vector; x, f: (P,) vectors.  Energy: k depth^2 / 2.
    """
    for p in range(x.shape[0]):
        n = ds.zeros_like(x[p])
        for d in range(normal.shape[0]):
            n[d] = normal[d]
        depth = offset - ds.dot(n, x[p])
        if depth > 0.0:
            f[p] += (k * depth) * n


@ds.kernel
def pair_contact(x, nbr, nnbr, radius: float, k: float, f):
    """Penalty force between overlapping spheres: f[p] += k (2 r - d) (x_p - x_q) / d for d < 2 r.

    x, f: (P,) vectors; nbr: (P, K) ints and nnbr: (P,) ints, a neighbour list
    (from :func:`neighbour_list` with cutoff >= 2 radius) listing each pair
    from both sides.  Energy: sum over pairs k (2r - d)^2 / 2.
    """
    for p in range(x.shape[0]):
        fp = ds.zeros_like(x[p])
        for m in range(ds.min(nnbr[p], nbr.shape[1])):
            q = nbr[p, m]
            d = x[p] - x[q]
            dist = ds.norm(d)
            if dist < 2.0 * radius:
                fp = fp + (k * (2.0 * radius - dist) / dist) * d
        f[p] += fp


# -------------------------------------------------------- neighbour search
@ds.kernel
def build_cells(x, lo, inv_cell: float, dims, cell, count, start, order):
    """Cell lists (counting sort of particles by cell), not differentiated.

    x: (P,) vec2/vec3; lo: (D,) floats, the grid's lower corner; dims: (D,)
    ints, cells per axis; cell: (P,) ints, each particle's cell (row-major,
    positions clamped into the grid); count, start: (ncells + 1,) ints,
    zeroed by the caller (count[c] particles of cell c sit at
    order[start[c] : start[c] + count[c]]); order: (P,) ints.
    """
    for p in range(x.shape[0]):
        c = 0
        for d in range(dims.shape[0]):
            c = c * dims[d] + ds.clamp(int(ds.floor((x[p][d] - lo[d]) * inv_cell)), 0, dims[d] - 1)
        cell[p] = c
        count[c] += 1
    for _ in range(1):   # serial: prefix sums, then place particles (order within a cell: by index)
        s = 0
        for c1 in range(count.shape[0]):
            start[c1] = s
            s = s + count[c1]
        for q in range(x.shape[0]):
            c2 = cell[q]
            order[start[c2 + 1] - count[c2]] = q
            count[c2] -= 1


@build_cells.defadjoint
def _build_cells_adjoint(*args):
    """Integer bookkeeping: nothing to differentiate."""


@ds.kernel
def find_neighbours(x, lo, inv_cell: float, dims, start, order, cutoff: float, nbr, nnbr):
    """For each particle, the others within ``cutoff`` (not differentiated).

    Uses the cell lists of :func:`build_cells` (cell size >= cutoff).  nbr:
    (P, K) ints receives up to K neighbours; nnbr: (P,) ints the number
    found (may exceed K: then the list is truncated).
    """
    for p in range(x.shape[0]):
        D = dims.shape[0]
        found = 0
        ci = ds.clamp(int(ds.floor((x[p][0] - lo[0]) * inv_cell)), 0, dims[0] - 1)
        cj = ds.clamp(int(ds.floor((x[p][1] - lo[1]) * inv_cell)), 0, dims[1] - 1)
        ck = 0
        nz = 1
        if D == 3:
            ck = ds.clamp(int(ds.floor((x[p][D - 1] - lo[D - 1]) * inv_cell)), 0, dims[D - 1] - 1)
            nz = dims[D - 1]
        for a in range(ds.max(ci - 1, 0), ds.min(ci + 2, dims[0])):
            for b in range(ds.max(cj - 1, 0), ds.min(cj + 2, dims[1])):
                for e in range(ds.max(ck - 1, 0), ds.min(ck + 2, nz)):
                    c = (a * dims[1] + b) * nz + e
                    for m in range(start[c], start[c + 1]):
                        q = order[m]
                        if q != p and ds.norm(x[q] - x[p]) < cutoff:
                            if found < nbr.shape[1]:
                                nbr[p, found] = q
                            found += 1
        nnbr[p] = found


@find_neighbours.defadjoint
def _find_neighbours_adjoint(*args):
    """Integer outputs: nothing to differentiate."""


def neighbour_list(x, cutoff: float, max_neighbours: int = 32, lo=None, hi=None):
    """(nbr, nnbr): each particle's neighbours within ``cutoff`` as int32 arrays (P, K) and (P,).

    x: ds.Array of vec2/vec3 (or numpy (P, 2|3)).  ``lo``/``hi`` bound the
    cell grid (default: the particles' bounding box).  Unused slots of nbr are -1.
    """
    xs = np.asarray(x.numpy() if isinstance(x, ds.Array) else x, dtype=np.float64)
    dim = xs.shape[1]
    if dim not in (2, 3):
        raise ValueError(f"positions must be 2-D or 3-D vectors, got shape {xs.shape}")
    lo = np.asarray(xs.min(axis=0) if lo is None else lo, dtype=np.float64)
    hi = np.asarray(xs.max(axis=0) if hi is None else hi, dtype=np.float64)
    dims = np.maximum(1, np.floor((hi - lo) / cutoff).astype(np.int64)).astype(np.int32)
    ncell = int(np.prod(dims))
    vt = ds.vec(dim, ds.f64)
    xa = ds.array(xs, dtype=vt)
    P = xs.shape[0]
    cell = np.zeros(P, np.int32)
    count = np.zeros(ncell + 1, np.int32)
    start = np.zeros(ncell + 1, np.int32)
    order = np.zeros(P, np.int32)
    build_cells(xa, lo, 1.0 / cutoff, dims, cell, count, start, order)
    nbr = np.full((P, max_neighbours), -1, np.int32)
    nnbr = np.zeros(P, np.int32)
    find_neighbours(xa, lo, 1.0 / cutoff, dims, start, order, float(cutoff), nbr, nnbr)
    return ds.array(nbr), ds.array(nnbr)
