"""Iterative Poisson solves (lap p = rhs), e.g. the pressure projection of a fluid step.

To stay differentiable (API §5: no element is overwritten after it was read)
the iterates live on an iteration axis: ``p`` has shape ``(K + 1, nx, ny)``,
``p[0]`` the initial guess, ``p[k + 1]`` one sweep of ``p[k]``; the whole
solve is one launch (a ``ds.serial`` loop over sweeps) and reverse mode runs
the sweeps backwards.  Memory grows with K; for long solves use the one-sweep
kernels with ping-pong buffers under ``ds.Rollout`` checkpointing, or a
custom adjoint (the adjoint of a converged solve is another solve).

Boundary codes as in :mod:`difsci.kernels.stencils` (ghosts: ``bval`` for
Dirichlet, mirrored for Neumann, wrapped for periodic).
"""
from __future__ import annotations

import numpy as np

import difsci as ds

from .stencils import (
    PERIODIC,
    bc_code,
    gval2,
    is_ghost,
    neighbour,
    perimeter_point,
    perimeter_size,
)


@ds.func
def _rval(p, r: int, i: int, j: int, di: int, dj: int, nx: int, ny: int, bc: int, bval):
    """p[r, i + di, j + dj] with ghosts by ``bc``.  p: (K, nx, ny)."""
    g = is_ghost(i, di, nx, bc) or is_ghost(j, dj, ny, bc)
    return ds.select(g, bval, p[r, neighbour(i, di, nx, bc), neighbour(j, dj, ny, bc)])


@ds.func
def _sweep_at(p, r: int, i: int, j: int, nx: int, ny: int, rhs, h2, bc: int, bval):
    """One Jacobi/Gauss-Seidel value at (i, j) from the neighbours in p[r] (ghosts looked up)."""
    s = (_rval(p, r, i, j, -1, 0, nx, ny, bc, bval) + _rval(p, r, i, j, 1, 0, nx, ny, bc, bval)
         + _rval(p, r, i, j, 0, -1, nx, ny, bc, bval) + _rval(p, r, i, j, 0, 1, nx, ny, bc, bval))
    return 0.25 * (s - h2 * rhs[i, j])


@ds.kernel
def jacobi2d(p, rhs, h: float, bc: int, bval: float):
    """K Jacobi sweeps for lap p = rhs: p[k + 1] = sweep(p[k]).  p: (K + 1, nx, ny); rhs: (nx, ny)."""
    nx, ny = p.shape[1], p.shape[2]
    h2 = h * h
    for k in ds.serial(range(p.shape[0] - 1)):
        for i, j in ds.ndrange((1, nx - 1), (1, ny - 1)):
            p[k + 1, i, j] = 0.25 * (p[k, i - 1, j] + p[k, i + 1, j] + p[k, i, j - 1] + p[k, i, j + 1]
                                     - h2 * rhs[i, j])
        for b in range(perimeter_size(nx, ny)):
            ib, jb = perimeter_point(b, nx, ny)
            p[k + 1, ib, jb] = _sweep_at(p, k, ib, jb, nx, ny, rhs, h2, bc, bval)


@ds.kernel
def jacobi2d_step(p, rhs, out, h: float, bc: int, bval: float):
    """One Jacobi sweep: out = sweep(p).  p, rhs, out: (nx, ny) (ping-pong buffers)."""
    nx, ny = p.shape[0], p.shape[1]
    h2 = h * h
    for i, j in ds.ndrange(nx, ny):
        s = (gval2(p, i, j, -1, 0, nx, ny, bc, bval) + gval2(p, i, j, 1, 0, nx, ny, bc, bval)
             + gval2(p, i, j, 0, -1, nx, ny, bc, bval) + gval2(p, i, j, 0, 1, nx, ny, bc, bval))
        out[i, j] = 0.25 * (s - h2 * rhs[i, j])


@ds.func
def _rval3(p, r: int, i: int, j: int, k: int, di: int, dj: int, dk: int, nx: int, ny: int, nz: int, bc: int,
           bval):
    """p[r, i + di, j + dj, k + dk] with ghosts by ``bc``.  p: (K, nx, ny, nz)."""
    g = is_ghost(i, di, nx, bc) or is_ghost(j, dj, ny, bc) or is_ghost(k, dk, nz, bc)
    return ds.select(g, bval, p[r, neighbour(i, di, nx, bc), neighbour(j, dj, ny, bc), neighbour(k, dk, nz, bc)])


@ds.func
def _rsum6(p, r: int, i: int, j: int, k: int, nx: int, ny: int, nz: int, bc: int, bval):
    """Sum of the six neighbours of (i, j, k) in p[r], ghosts by ``bc``."""
    s = _rval3(p, r, i, j, k, -1, 0, 0, nx, ny, nz, bc, bval) + _rval3(p, r, i, j, k, 1, 0, 0, nx, ny, nz, bc, bval)
    s = s + _rval3(p, r, i, j, k, 0, -1, 0, nx, ny, nz, bc, bval) + _rval3(p, r, i, j, k, 0, 1, 0, nx, ny, nz, bc, bval)
    s = s + _rval3(p, r, i, j, k, 0, 0, -1, nx, ny, nz, bc, bval)
    return s + _rval3(p, r, i, j, k, 0, 0, 1, nx, ny, nz, bc, bval)


@ds.kernel
def jacobi3d(p, rhs, h: float, bc: int, bval: float):
    """K Jacobi sweeps in 3-D: p[k + 1] = sweep(p[k]).  p: (K + 1, nx, ny, nz); rhs: (nx, ny, nz)."""
    nx, ny, nz = p.shape[1], p.shape[2], p.shape[3]
    h2 = h * h
    for r in ds.serial(range(p.shape[0] - 1)):
        for i, j, k in ds.ndrange(nx, ny, nz):
            p[r + 1, i, j, k] = (_rsum6(p, r, i, j, k, nx, ny, nz, bc, bval) - h2 * rhs[i, j, k]) / 6.0


@ds.kernel
def red_black_gauss_seidel2d(p, rhs, h: float, bc: int, bval: float):
    """K red-black Gauss-Seidel sweeps: p[k + 1] = sweep(p[k]).  p: (K + 1, nx, ny); rhs: (nx, ny).

    Red points ((i + j) even) of p[k + 1] come from the black neighbours in
    p[k]; black points then come from the red ones just written to p[k + 1].
    Every element is written once, before it is read, so reverse mode works.
    Periodic boundaries need even nx and ny (else the colouring breaks).
    """
    nx, ny = p.shape[1], p.shape[2]
    h2 = h * h
    half = (ny + 1) // 2
    for k in ds.serial(range(p.shape[0] - 1)):
        for i, jj in ds.ndrange(nx, half):
            j = 2 * jj + i % 2
            if j < ny:
                p[k + 1, i, j] = _sweep_at(p, k, i, j, nx, ny, rhs, h2, bc, bval)
        for i2, jj2 in ds.ndrange(nx, half):
            j2 = 2 * jj2 + 1 - i2 % 2
            if j2 < ny:
                p[k + 1, i2, j2] = _sweep_at(p, k + 1, i2, j2, nx, ny, rhs, h2, bc, bval)


def pressure_solve(rhs, iters: int = 50, h: float = 1.0, bc="neumann", bval: float = 0.0,
                   method: str = "jacobi", p0=None) -> ds.Array:
    """Solve lap p = rhs approximately; returns the (iters + 1, *rhs.shape) history (``[-1]``: the solution).

    ``method``: ``"jacobi"`` or ``"rbgs"`` (red-black Gauss-Seidel, 2-D).
    The result carries gradients when ``rhs`` does (the gradient with respect
    to the initial guess ``p0`` is then ``result.grad[0]``).
    """
    r = rhs if isinstance(rhs, ds.Array) else ds.array(np.asarray(rhs, dtype=np.float64))
    code = bc_code(bc)
    p = ds.zeros((iters + 1,) + tuple(r.shape), dtype=r.dtype, requires_grad=r.requires_grad)
    if p0 is not None:
        p.numpy()[0] = np.asarray(p0.numpy() if isinstance(p0, ds.Array) else p0)
    if method == "rbgs":
        if r.ndim != 2:
            raise ValueError("red-black Gauss-Seidel is implemented for 2-D grids")
        if code == PERIODIC and (r.shape[0] % 2 or r.shape[1] % 2):
            raise ValueError("periodic red-black Gauss-Seidel needs even grid sizes")
        red_black_gauss_seidel2d(p, r, h, code, bval)
    elif method == "jacobi":
        {2: jacobi2d, 3: jacobi3d}[r.ndim](p, r, h, code, bval)
    else:
        raise ValueError(f"unknown method {method!r}: use 'jacobi' or 'rbgs'")
    return p


__all__ = ["jacobi2d", "jacobi2d_step", "jacobi3d", "pressure_solve", "red_black_gauss_seidel2d"]
