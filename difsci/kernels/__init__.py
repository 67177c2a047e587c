"""Ready, differentiable kernels written in difsci's own language.

Every kernel here is an ordinary ``@ds.kernel`` (every helper an ordinary
``@ds.func``): launch it, record it on a ``ds.Tape``, read its
``.source``/``.adjoint.source``.  Docstrings give the array shapes.

=================  ==========================================================
module             contents
=================  ==========================================================
``reductions``     sum, mean, dot, squared norm, max/min, argmax/argmin (whole
                   array or along an axis); a deterministic sum
``linalg``         matvec, (batched) matmul, small batched solves, the dense
                   layer ``act(x @ W + b)`` (:func:`dense_kernel`: BLAS product, per
                   activation and derivative streams; difsci.nn uses it)
``activations``    tanh, sin, relu, softplus, sigmoid, gelu, identity as funcs
``stencils``       Laplacian, gradient, divergence, curl on 1/2/3-D grids with
                   Dirichlet, Neumann or periodic boundaries
``interpolation``  bilinear / trilinear sampling funcs
``advection``      semi-Lagrangian and upwind advection steps
``poisson``        Jacobi and red-black Gauss-Seidel Poisson solves
``particles``      MPM P2G/G2P (2-D, 3-D), cell-list neighbour search, springs,
                   penalty contact
``integrators``    semi-implicit Euler, velocity Verlet, RK4
``sampling``       uniform and Latin-hypercube points in boxes
=================  ==========================================================

``import difsci.kernels as dk``; ``dk.sum(x)``, ``dk.laplacian2d(u, out, h,
dk.PERIODIC, 0.0)``, ``dk.dense_kernel("tanh")(x, W, b, z, y)`` …
``sum``, ``max`` and ``min`` shadow builtins (as numpy's do): they are
importable by name but left out of ``__all__`` (``import *``).
"""
from __future__ import annotations

from . import (
    activations,
    advection,
    integrators,
    interpolation,
    linalg,
    particles,
    poisson,
    reductions,
    sampling,
    stencils,
)
from .activations import ACTIVATIONS, activation
from .advection import semi_lagrangian2d, semi_lagrangian3d, upwind1d, upwind2d
from .integrators import (
    rk4_kernel,
    rk4_step_func,
    rk4_system_kernel,
    semi_implicit_euler,
    symplectic_euler_kernel,
    velocity_verlet_kernel,
    verlet_position,
    verlet_velocity,
)
from .interpolation import bilinear, sample2d, sample3d, trilinear, wrap_index
from .linalg import (
    batched_matmul,
    batched_matvec,
    batched_solve,
    dense,
    dense_kernel,
    dense_streams_kernel,
    matmul,
    matmul_blocked,
    matvec,
    solve,
    solve2,
    solve3,
    solve_batched,
)
from .particles import (
    bspline_weights,
    build_cells,
    dashpot_force,
    find_neighbours,
    g2p2d,
    g2p3d,
    mls_affine,
    neighbour_list,
    p2g2d,
    p2g3d,
    pair_contact,
    plane_contact,
    spring_damping,
    spring_energy,
    spring_force,
    spring_forces,
)
from .poisson import (
    jacobi2d,
    jacobi2d_step,
    jacobi3d,
    pressure_solve,
    red_black_gauss_seidel2d,
)
from .reductions import (
    argmax,
    argmax_axis,
    argmin,
    dot,
    mean,
    mean_axis,
    reduce_argmax,
    reduce_dot,
    reduce_mean,
    reduce_sqnorm,
    reduce_sum,
    reduce_sum_deterministic,
    sqnorm,
    sum_axis,
    take0,
)
from .reductions import max as max
from .reductions import min as min
from .reductions import sum as sum
from .sampling import (
    latin_hypercube,
    latin_hypercube_fill,
    lhs_strata,
    randn_fill,
    randu_box,
    uniform_box,
)
from .stencils import (
    DIRICHLET,
    NEUMANN,
    PERIODIC,
    bc_code,
    curl2d,
    curl3d,
    divergence1d,
    divergence2d,
    divergence3d,
    gradient1d,
    gradient2d,
    gradient3d,
    laplacian1d,
    laplacian2d,
    laplacian3d,
)

__all__ = [
    "ACTIVATIONS",
    "DIRICHLET",
    "NEUMANN",
    "PERIODIC",
    "activation",
    "activations",
    "advection",
    "argmax",
    "argmax_axis",
    "argmin",
    "batched_matmul",
    "batched_matvec",
    "batched_solve",
    "bc_code",
    "bilinear",
    "bspline_weights",
    "build_cells",
    "curl2d",
    "curl3d",
    "dashpot_force",
    "dense",
    "dense_kernel",
    "dense_streams_kernel",
    "divergence1d",
    "divergence2d",
    "divergence3d",
    "dot",
    "find_neighbours",
    "g2p2d",
    "g2p3d",
    "gradient1d",
    "gradient2d",
    "gradient3d",
    "integrators",
    "interpolation",
    "jacobi2d",
    "jacobi2d_step",
    "jacobi3d",
    "laplacian1d",
    "laplacian2d",
    "laplacian3d",
    "latin_hypercube",
    "latin_hypercube_fill",
    "lhs_strata",
    "linalg",
    "matmul",
    "matmul_blocked",
    "matvec",
    "mean",
    "mean_axis",
    "mls_affine",
    "neighbour_list",
    "p2g2d",
    "p2g3d",
    "pair_contact",
    "particles",
    "plane_contact",
    "poisson",
    "pressure_solve",
    "randn_fill",
    "randu_box",
    "red_black_gauss_seidel2d",
    "reduce_argmax",
    "reduce_dot",
    "reduce_mean",
    "reduce_sqnorm",
    "reduce_sum",
    "reduce_sum_deterministic",
    "reductions",
    "rk4_kernel",
    "rk4_step_func",
    "rk4_system_kernel",
    "sample2d",
    "sample3d",
    "sampling",
    "semi_implicit_euler",
    "semi_lagrangian2d",
    "semi_lagrangian3d",
    "solve",
    "solve2",
    "solve3",
    "solve_batched",
    "spring_damping",
    "spring_energy",
    "spring_force",
    "spring_forces",
    "sqnorm",
    "stencils",
    "sum_axis",
    "symplectic_euler_kernel",
    "take0",
    "trilinear",
    "uniform_box",
    "upwind1d",
    "upwind2d",
    "velocity_verlet_kernel",
    "verlet_position",
    "verlet_velocity",
    "wrap_index",
]
