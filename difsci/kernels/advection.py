"""Advection of a quantity by a velocity field: semi-Lagrangian and first-order upwind.

One kernel launch is one time step from ``q`` into ``out`` (another array,
or the next row of a time axis: ``q[t]`` -> ``q[t + 1]`` with views), so a
sequence of steps stays differentiable (API §5).  Grid spacing ``h``, time
step ``dt``; velocities in physical units per unit time.  Boundary codes as
in :mod:`difsci.kernels.stencils`.
"""
from __future__ import annotations

import difsci as ds

from .interpolation import bilinear, trilinear
from .stencils import gval1, gval2


@ds.kernel
def semi_lagrangian2d(q, vel, out, dt: float, h: float, bc: int):
    """out[i, j] = q sampled (bilinearly) at the departure point (i, j) - dt vel[i, j] / h.

    q, out: (nx, ny) numbers or vectors; vel: (nx, ny) vec2.  Outside the
    grid: nearest edge value (NEUMANN), wrapped (PERIODIC) or zero (DIRICHLET).
    """
    c = dt / h
    for i, j in ds.ndrange(q.shape[0], q.shape[1]):
        u = vel[i, j]
        out[i, j] = bilinear(q, i - c * u[0], j - c * u[1], bc)


@ds.kernel
def semi_lagrangian3d(q, vel, out, dt: float, h: float, bc: int):
    """3-D :func:`semi_lagrangian2d`.  q, out: (nx, ny, nz); vel: (nx, ny, nz) vec3."""
    c = dt / h
    for i, j, k in ds.ndrange(q.shape[0], q.shape[1], q.shape[2]):
        u = vel[i, j, k]
        out[i, j, k] = trilinear(q, i - c * u[0], j - c * u[1], k - c * u[2], bc)


@ds.func
def _upwind(qm, q0, qp, u):
    """u dq/dx * h by the upwind difference: backward where u > 0, forward elsewhere."""
    return ds.select(u > 0.0, u * (q0 - qm), u * (qp - q0))


@ds.kernel
def upwind1d(q, u, out, dt: float, h: float, bc: int, bval: float):
    """out[i] = q[i] - dt/h * upwind(u dq/dx).  q, u, out: (n,).  Ghosts as in the stencils (bval: Dirichlet)."""
    n = q.shape[0]
    c = dt / h
    for i in range(n):
        qm = gval1(q, i, -1, n, bc, bval)
        qp = gval1(q, i, 1, n, bc, bval)
        out[i] = q[i] - c * _upwind(qm, q[i], qp, u[i])


@ds.kernel
def upwind2d(q, vel, out, dt: float, h: float, bc: int, bval: float):
    """out = q - dt/h * upwind(vel . grad q).  q, out: (nx, ny) floats; vel: (nx, ny) vec2."""
    nx, ny = q.shape[0], q.shape[1]
    c = dt / h
    for i, j in ds.ndrange(nx, ny):
        u = vel[i, j]
        ax = _upwind(gval2(q, i, j, -1, 0, nx, ny, bc, bval), q[i, j], gval2(q, i, j, 1, 0, nx, ny, bc, bval), u[0])
        ay = _upwind(gval2(q, i, j, 0, -1, nx, ny, bc, bval), q[i, j], gval2(q, i, j, 0, 1, nx, ny, bc, bval), u[1])
        out[i, j] = q[i, j] - c * (ax + ay)
