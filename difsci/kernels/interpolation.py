"""Bilinear and trilinear sampling of grids, as ``@ds.func`` for use inside kernels.

Coordinates are in grid-index units: ``(px, py) = (2.5, 0)`` lies halfway
between ``q[2, 0]`` and ``q[3, 0]``.  The grid holds numbers or vectors.
``bc`` (the codes of :mod:`difsci.kernels.stencils`) says what lies outside:

* ``NEUMANN`` (1): the nearest edge value (clamped coordinates);
* ``PERIODIC`` (2): the grid repeats;
* ``DIRICHLET`` (0): zero.

Samples are differentiable in the grid values and in the coordinates.
"""
from __future__ import annotations

import difsci as ds

from .stencils import NEUMANN, PERIODIC


@ds.func
def wrap_index(i: int, n: int, bc: int) -> int:
    """Index ``i`` of an axis of ``n`` points under ``bc``: wrapped, clamped, or -1 outside (Dirichlet)."""
    k = i
    if bc == PERIODIC:
        k = i % n
        if k < 0:
            k = k + n
    elif bc == NEUMANN:
        k = ds.clamp(i, 0, n - 1)
    elif i < 0 or i >= n:
        k = -1
    return k


@ds.func
def _val2(q, i: int, j: int):
    """q[i, j], or zero (of q's element type) where an index is -1."""
    v = ds.zeros_like(q[0, 0])
    if i >= 0 and j >= 0:
        v = q[i, j]
    return v


@ds.func
def _val3(q, i: int, j: int, k: int):
    v = ds.zeros_like(q[0, 0, 0])
    if i >= 0 and j >= 0 and k >= 0:
        v = q[i, j, k]
    return v


@ds.func
def bilinear(q, px, py, bc: int):
    """q sampled at grid coordinates (px, py).  q: (nx, ny) numbers or vectors."""
    nx, ny = q.shape[0], q.shape[1]
    if bc == NEUMANN:
        px = ds.clamp(px, 0.0, nx - 1.0)
        py = ds.clamp(py, 0.0, ny - 1.0)
    fx = ds.floor(px)
    fy = ds.floor(py)
    tx = px - fx
    ty = py - fy
    i0 = int(fx)
    j0 = int(fy)
    i1 = wrap_index(i0 + 1, nx, bc)
    j1 = wrap_index(j0 + 1, ny, bc)
    i0 = wrap_index(i0, nx, bc)
    j0 = wrap_index(j0, ny, bc)
    return ((1.0 - tx) * ((1.0 - ty) * _val2(q, i0, j0) + ty * _val2(q, i0, j1))
            + tx * ((1.0 - ty) * _val2(q, i1, j0) + ty * _val2(q, i1, j1)))


@ds.func
def trilinear(q, px, py, pz, bc: int):
    """q sampled at grid coordinates (px, py, pz).  q: (nx, ny, nz) numbers or vectors."""
    nx, ny, nz = q.shape[0], q.shape[1], q.shape[2]
    if bc == NEUMANN:
        px = ds.clamp(px, 0.0, nx - 1.0)
        py = ds.clamp(py, 0.0, ny - 1.0)
        pz = ds.clamp(pz, 0.0, nz - 1.0)
    fx = ds.floor(px)
    fy = ds.floor(py)
    fz = ds.floor(pz)
    tx = px - fx
    ty = py - fy
    tz = pz - fz
    i0 = int(fx)
    j0 = int(fy)
    k0 = int(fz)
    i1 = wrap_index(i0 + 1, nx, bc)
    j1 = wrap_index(j0 + 1, ny, bc)
    k1 = wrap_index(k0 + 1, nz, bc)
    i0 = wrap_index(i0, nx, bc)
    j0 = wrap_index(j0, ny, bc)
    k0 = wrap_index(k0, nz, bc)
    c00 = (1.0 - tz) * _val3(q, i0, j0, k0) + tz * _val3(q, i0, j0, k1)
    c01 = (1.0 - tz) * _val3(q, i0, j1, k0) + tz * _val3(q, i0, j1, k1)
    c10 = (1.0 - tz) * _val3(q, i1, j0, k0) + tz * _val3(q, i1, j0, k1)
    c11 = (1.0 - tz) * _val3(q, i1, j1, k0) + tz * _val3(q, i1, j1, k1)
    return (1.0 - tx) * ((1.0 - ty) * c00 + ty * c01) + tx * ((1.0 - ty) * c10 + ty * c11)


@ds.kernel
def sample2d(q, pts, bc: int, out):
    """out[p] = bilinear(q, pts[p, 0], pts[p, 1]).  q: (nx, ny); pts: (P, 2) floats; out: (P,)."""
    for p in range(pts.shape[0]):
        out[p] = bilinear(q, pts[p, 0], pts[p, 1], bc)


@ds.kernel
def sample3d(q, pts, bc: int, out):
    """out[p] = trilinear(q, pts[p, 0], pts[p, 1], pts[p, 2]).  q: (nx, ny, nz); pts: (P, 3); out: (P,)."""
    for p in range(pts.shape[0]):
        out[p] = trilinear(q, pts[p, 0], pts[p, 1], pts[p, 2], bc)
