"""Finite-difference operators on 1-, 2- and 3-D regular grids.

Values live at grid points ``u[i]``, ``u[i, j]``, ``u[i, j, k]`` with spacing
``h`` in every direction.  Every operator takes the boundary condition ``bc``
as a run-time integer and, for Dirichlet, the value ``bval`` of the points
just outside the grid (ghost points):

* ``DIRICHLET`` (0): the ghost points hold ``bval``;
* ``NEUMANN`` (1): the ghost point copies its neighbour inside the grid
  (zero normal derivative across the boundary face);
* ``PERIODIC`` (2): the grid wraps around.

Kernels write their result (``out[...] = ...``), they never accumulate.  The
Laplacians run the interior points in a parallel loop whose neighbours are
plain ``i +- 1`` offsets (so the generated adjoint needs no atomics) and the
boundary points in one small loop that looks the ghost values up.  Ghost
lookups are branch-free (``ds.select``, clamped indices): that keeps the
generated adjoints short, and their numba compile times with them.

Vector fields are arrays of ``ds.vec2``/``ds.vec3`` (``ds.array(a, dtype=ds.vec2)``
for a numpy array of shape ``(nx, ny, 2)``).
"""
from __future__ import annotations

import difsci as ds

DIRICHLET = 0
NEUMANN = 1
PERIODIC = 2
BOUNDARY_CODES = {"dirichlet": DIRICHLET, "neumann": NEUMANN, "periodic": PERIODIC}


def bc_code(bc) -> int:
    """The integer code of a boundary condition given as a name or a code."""
    if isinstance(bc, str):
        try:
            return BOUNDARY_CODES[bc.lower()]
        except KeyError:
            raise ValueError(f"unknown boundary condition {bc!r}: use one of {sorted(BOUNDARY_CODES)}") from None
    if bc not in (DIRICHLET, NEUMANN, PERIODIC):
        raise ValueError(f"unknown boundary condition code {bc!r}: use 0 (Dirichlet), 1 (Neumann), 2 (periodic)")
    return int(bc)


# ------------------------------------------------------------ ghost lookups
@ds.func
def neighbour(i: int, d: int, n: int, bc: int) -> int:
    """A valid index for point ``i + d`` (|d| <= n) of an axis of ``n`` points: wrapped if periodic, else clamped."""
    k = i + d
    kw = ds.select(k < 0, k + n, ds.select(k >= n, k - n, k))
    return ds.select(bc == PERIODIC, kw, ds.clamp(k, 0, n - 1))


@ds.func
def is_ghost(i: int, d: int, n: int, bc: int) -> bool:
    """True when point ``i + d`` lies outside the axis and takes the Dirichlet value."""
    k = i + d
    return bc == DIRICHLET and (k < 0 or k >= n)


@ds.func
def gval1(u, i: int, d: int, n: int, bc: int, bval):
    """u at point i + d of a 1-D grid, ghosts by ``bc``.  u: (n,)."""
    return ds.select(is_ghost(i, d, n, bc), bval, u[neighbour(i, d, n, bc)])


@ds.func
def gval2(u, i: int, j: int, di: int, dj: int, nx: int, ny: int, bc: int, bval):
    """u at point (i + di, j + dj) of a 2-D grid, ghosts by ``bc``.  u: (nx, ny)."""
    g = is_ghost(i, di, nx, bc) or is_ghost(j, dj, ny, bc)
    return ds.select(g, bval, u[neighbour(i, di, nx, bc), neighbour(j, dj, ny, bc)])


@ds.func
def gval3(u, i: int, j: int, k: int, di: int, dj: int, dk: int, nx: int, ny: int, nz: int, bc: int, bval):
    """u at point (i + di, j + dj, k + dk) of a 3-D grid, ghosts by ``bc``.  u: (nx, ny, nz)."""
    g = is_ghost(i, di, nx, bc) or is_ghost(j, dj, ny, bc) or is_ghost(k, dk, nz, bc)
    return ds.select(g, bval, u[neighbour(i, di, nx, bc), neighbour(j, dj, ny, bc), neighbour(k, dk, nz, bc)])


@ds.func
def gcomp2(v, i: int, j: int, di: int, dj: int, c: int, nx: int, ny: int, bc: int, bval):
    """Component c of the vector v at (i + di, j + dj); every component of a Dirichlet ghost is bval."""
    g = is_ghost(i, di, nx, bc) or is_ghost(j, dj, ny, bc)
    return ds.select(g, bval, v[neighbour(i, di, nx, bc), neighbour(j, dj, ny, bc)][c])


@ds.func
def gcomp3(v, i: int, j: int, k: int, di: int, dj: int, dk: int, c: int, nx: int, ny: int, nz: int, bc: int,
           bval):
    """Component c of the vector v at (i + di, j + dj, k + dk), ghosts by ``bc``."""
    g = is_ghost(i, di, nx, bc) or is_ghost(j, dj, ny, bc) or is_ghost(k, dk, nz, bc)
    return ds.select(g, bval, v[neighbour(i, di, nx, bc), neighbour(j, dj, ny, bc), neighbour(k, dk, nz, bc)][c])


@ds.func
def perimeter_point(b: int, nx: int, ny: int):
    """The b-th boundary point (i, j) of an nx x ny grid, 0 <= b < perimeter_size(nx, ny)."""
    nr = ds.min(nx, 2) * ny               # the first and last rows
    ms = ds.min(ny, 2)
    i = (b // ny) * (nx - 1)
    j = b % ny
    if b >= nr:                           # then the first and last columns of the rows between
        i = 1 + (b - nr) // ms
        j = ((b - nr) % ms) * (ny - 1)
    return i, j


@ds.func
def perimeter_size(nx: int, ny: int) -> int:
    """Number of boundary points of an nx x ny grid."""
    return ds.min(nx, 2) * ny + ds.max(nx - 2, 0) * ds.min(ny, 2)


@ds.func
def _sum6(u, i: int, j: int, k: int, nx: int, ny: int, nz: int, bc: int, bval):
    """Sum of the six neighbours of (i, j, k), ghosts by ``bc``."""
    s = gval3(u, i, j, k, -1, 0, 0, nx, ny, nz, bc, bval) + gval3(u, i, j, k, 1, 0, 0, nx, ny, nz, bc, bval)
    s = s + gval3(u, i, j, k, 0, -1, 0, nx, ny, nz, bc, bval) + gval3(u, i, j, k, 0, 1, 0, nx, ny, nz, bc, bval)
    return s + gval3(u, i, j, k, 0, 0, -1, nx, ny, nz, bc, bval) + gval3(u, i, j, k, 0, 0, 1, nx, ny, nz, bc, bval)


# ---------------------------------------------------------------- Laplacian
@ds.kernel
def laplacian1d(u, out, h: float, bc: int, bval: float):
    """out[i] = (u[i-1] - 2 u[i] + u[i+1]) / h**2.  u, out: (n,)."""
    n = u.shape[0]
    c = 1.0 / (h * h)
    for i in range(1, n - 1):
        out[i] = (u[i - 1] - 2.0 * u[i] + u[i + 1]) * c
    for s in range(ds.min(n, 2)):
        ib = s * (n - 1)      # `i` is taken: the loop variable of the loop above stays defined
        out[ib] = (gval1(u, ib, -1, n, bc, bval) + gval1(u, ib, 1, n, bc, bval) - 2.0 * u[ib]) * c


@ds.kernel
def laplacian2d(u, out, h: float, bc: int, bval: float):
    """Five-point Laplacian.  u, out: (nx, ny)."""
    nx, ny = u.shape[0], u.shape[1]
    c = 1.0 / (h * h)
    for i, j in ds.ndrange((1, nx - 1), (1, ny - 1)):
        out[i, j] = (u[i - 1, j] + u[i + 1, j] + u[i, j - 1] + u[i, j + 1] - 4.0 * u[i, j]) * c
    for b in range(perimeter_size(nx, ny)):
        ib, jb = perimeter_point(b, nx, ny)
        s = (gval2(u, ib, jb, -1, 0, nx, ny, bc, bval) + gval2(u, ib, jb, 1, 0, nx, ny, bc, bval)
             + gval2(u, ib, jb, 0, -1, nx, ny, bc, bval) + gval2(u, ib, jb, 0, 1, nx, ny, bc, bval))
        out[ib, jb] = (s - 4.0 * u[ib, jb]) * c


@ds.kernel
def laplacian3d(u, out, h: float, bc: int, bval: float):
    """Seven-point Laplacian.  u, out: (nx, ny, nz)."""
    nx, ny, nz = u.shape[0], u.shape[1], u.shape[2]
    c = 1.0 / (h * h)
    for i, j, k in ds.ndrange((1, nx - 1), (1, ny - 1), (1, nz - 1)):
        out[i, j, k] = (u[i - 1, j, k] + u[i + 1, j, k] + u[i, j - 1, k] + u[i, j + 1, k]
                        + u[i, j, k - 1] + u[i, j, k + 1] - 6.0 * u[i, j, k]) * c
    for ib, jb, kb in ds.ndrange(nx, ny, nz):   # the boundary shell
        if ib == 0 or ib == nx - 1 or jb == 0 or jb == ny - 1 or kb == 0 or kb == nz - 1:
            out[ib, jb, kb] = (_sum6(u, ib, jb, kb, nx, ny, nz, bc, bval) - 6.0 * u[ib, jb, kb]) * c


# ---------------------------------------------------------- gradient (central)
@ds.kernel
def gradient1d(u, out, h: float, bc: int, bval: float):
    """out[i] = (u[i+1] - u[i-1]) / 2h.  u, out: (n,)."""
    n = u.shape[0]
    for i in range(n):
        out[i] = (gval1(u, i, 1, n, bc, bval) - gval1(u, i, -1, n, bc, bval)) / (2.0 * h)


@ds.kernel
def gradient2d(u, out, h: float, bc: int, bval: float):
    """Central-difference gradient.  u: (nx, ny) floats; out: (nx, ny) of vec2."""
    nx, ny = u.shape[0], u.shape[1]
    for i, j in ds.ndrange(nx, ny):
        gx = gval2(u, i, j, 1, 0, nx, ny, bc, bval) - gval2(u, i, j, -1, 0, nx, ny, bc, bval)
        gy = gval2(u, i, j, 0, 1, nx, ny, bc, bval) - gval2(u, i, j, 0, -1, nx, ny, bc, bval)
        out[i, j] = ds.vec2(gx, gy) / (2.0 * h)


@ds.kernel
def gradient3d(u, out, h: float, bc: int, bval: float):
    """Central-difference gradient.  u: (nx, ny, nz) floats; out: (nx, ny, nz) of vec3."""
    nx, ny, nz = u.shape[0], u.shape[1], u.shape[2]
    for i, j, k in ds.ndrange(nx, ny, nz):
        gx = gval3(u, i, j, k, 1, 0, 0, nx, ny, nz, bc, bval) - gval3(u, i, j, k, -1, 0, 0, nx, ny, nz, bc, bval)
        gy = gval3(u, i, j, k, 0, 1, 0, nx, ny, nz, bc, bval) - gval3(u, i, j, k, 0, -1, 0, nx, ny, nz, bc, bval)
        gz = gval3(u, i, j, k, 0, 0, 1, nx, ny, nz, bc, bval) - gval3(u, i, j, k, 0, 0, -1, nx, ny, nz, bc, bval)
        out[i, j, k] = ds.vec3(gx, gy, gz) / (2.0 * h)


# ---------------------------------------------------------------- divergence
@ds.kernel
def divergence1d(v, out, h: float, bc: int, bval: float):
    """out[i] = (v[i+1] - v[i-1]) / 2h (the 1-D divergence is the derivative).  v, out: (n,)."""
    n = v.shape[0]
    for i in range(n):
        out[i] = (gval1(v, i, 1, n, bc, bval) - gval1(v, i, -1, n, bc, bval)) / (2.0 * h)


@ds.kernel
def divergence2d(v, out, h: float, bc: int, bval: float):
    """Central-difference divergence.  v: (nx, ny) of vec2; out: (nx, ny) floats.

    Every component of a Dirichlet ghost vector is ``bval``.
    """
    nx, ny = v.shape[0], v.shape[1]
    for i, j in ds.ndrange(nx, ny):
        dx = gcomp2(v, i, j, 1, 0, 0, nx, ny, bc, bval) - gcomp2(v, i, j, -1, 0, 0, nx, ny, bc, bval)
        dy = gcomp2(v, i, j, 0, 1, 1, nx, ny, bc, bval) - gcomp2(v, i, j, 0, -1, 1, nx, ny, bc, bval)
        out[i, j] = (dx + dy) / (2.0 * h)


@ds.func
def _dd3(v, i: int, j: int, k: int, axis: int, c: int, nx: int, ny: int, nz: int, bc: int, bval):
    """Central difference (times 2h) of component c of v along ``axis`` (a constant) at (i, j, k)."""
    di = 1 if axis == 0 else 0
    dj = 1 if axis == 1 else 0
    dk = 1 if axis == 2 else 0
    return (gcomp3(v, i, j, k, di, dj, dk, c, nx, ny, nz, bc, bval)
            - gcomp3(v, i, j, k, -di, -dj, -dk, c, nx, ny, nz, bc, bval))


@ds.kernel
def divergence3d(v, out, h: float, bc: int, bval: float):
    """Central-difference divergence.  v: (nx, ny, nz) of vec3; out: (nx, ny, nz) floats."""
    nx, ny, nz = v.shape[0], v.shape[1], v.shape[2]
    for i, j, k in ds.ndrange(nx, ny, nz):
        s = (_dd3(v, i, j, k, 0, 0, nx, ny, nz, bc, bval) + _dd3(v, i, j, k, 1, 1, nx, ny, nz, bc, bval)
             + _dd3(v, i, j, k, 2, 2, nx, ny, nz, bc, bval))
        out[i, j, k] = s / (2.0 * h)


# ---------------------------------------------------------------------- curl
@ds.kernel
def curl2d(v, out, h: float, bc: int, bval: float):
    """Scalar curl dv_y/dx - dv_x/dy.  v: (nx, ny) of vec2; out: (nx, ny) floats."""
    nx, ny = v.shape[0], v.shape[1]
    for i, j in ds.ndrange(nx, ny):
        dvy = gcomp2(v, i, j, 1, 0, 1, nx, ny, bc, bval) - gcomp2(v, i, j, -1, 0, 1, nx, ny, bc, bval)
        dvx = gcomp2(v, i, j, 0, 1, 0, nx, ny, bc, bval) - gcomp2(v, i, j, 0, -1, 0, nx, ny, bc, bval)
        out[i, j] = (dvy - dvx) / (2.0 * h)


@ds.kernel
def curl3d(v, out, h: float, bc: int, bval: float):
    """Curl of a 3-D vector field.  v, out: (nx, ny, nz) of vec3."""
    nx, ny, nz = v.shape[0], v.shape[1], v.shape[2]
    for i, j, k in ds.ndrange(nx, ny, nz):
        cx = _dd3(v, i, j, k, 1, 2, nx, ny, nz, bc, bval) - _dd3(v, i, j, k, 2, 1, nx, ny, nz, bc, bval)
        cy = _dd3(v, i, j, k, 2, 0, nx, ny, nz, bc, bval) - _dd3(v, i, j, k, 0, 2, nx, ny, nz, bc, bval)
        cz = _dd3(v, i, j, k, 0, 1, nx, ny, nz, bc, bval) - _dd3(v, i, j, k, 1, 0, nx, ny, nz, bc, bval)
        out[i, j, k] = ds.vec3(cx, cy, cz) / (2.0 * h)
