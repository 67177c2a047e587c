"""Time integration: semi-implicit Euler, velocity Verlet and RK4 steps.

State arrays carry a time axis, ``x[t, i]`` (numbers or vectors), so each
step writes row ``t + 1`` from row ``t`` and a whole trajectory stays
differentiable (API §5).  Three layers:

* funcs taking arrays (``semi_implicit_euler``, ``verlet_position``,
  ``verlet_velocity``): call them per particle inside the parallel loops of
  your own ``ds.serial`` time loop;
* per-element steppers for ODEs ``dy/ds = f(y, s, p)`` with a ``@ds.func``
  ``f`` (:func:`rk4_step_func`), and trajectory kernels built from them;
* kernel factories for whole trajectories in one launch, given the force
  or right-hand-side func (:func:`symplectic_euler_kernel`,
  :func:`velocity_verlet_kernel`, :func:`rk4_kernel`, :func:`rk4_system_kernel`).

Factories cache one kernel per func.
"""
from __future__ import annotations

import difsci as ds


# ---------------------------------------------------------- array steps
@ds.func
def semi_implicit_euler(x, v, a, t: int, i: int, dt):
    """v[t+1, i] = v[t, i] + dt a;  x[t+1, i] = x[t, i] + dt v[t+1, i]  (a: the acceleration at step t)."""
    v[t + 1, i] = v[t, i] + dt * a
    x[t + 1, i] = x[t, i] + dt * v[t + 1, i]


@ds.func
def verlet_position(x, v, a, t: int, i: int, dt):
    """Velocity Verlet, first half: x[t+1, i] = x[t, i] + dt v[t, i] + dt^2/2 a[t, i]."""
    x[t + 1, i] = x[t, i] + dt * v[t, i] + (0.5 * dt * dt) * a[t, i]


@ds.func
def verlet_velocity(v, a, t: int, i: int, dt):
    """Velocity Verlet, second half (after a[t+1] was computed from x[t+1]):
    v[t+1, i] = v[t, i] + dt/2 (a[t, i] + a[t+1, i])."""
    v[t + 1, i] = v[t, i] + (0.5 * dt) * (a[t, i] + a[t + 1, i])


# ------------------------------------------------------------ factories
_CACHE: dict = {}


def _cached(kind, f, make):
    key = (kind, id(f))
    hit = _CACHE.get(key)
    if hit is None:
        hit = _CACHE[key] = (make(f), f)      # keep f alive: the key is its id
    return hit[0]


def rk4_step_func(f) -> ds.Func:
    """A func ``step(y, s, dt, p) -> y_next``: one classical RK4 step of dy/ds = f(y, s, p).

    ``f`` is a ``@ds.func`` of (state, time, parameter), the state a number or
    a vector, ``p`` anything ``f`` takes (a number, a vector).
    """
    def make(f):
        @ds.func
        def rk4_step(y, s, dt, p):
            k1 = f(y, s, p)
            k2 = f(y + (0.5 * dt) * k1, s + 0.5 * dt, p)
            k3 = f(y + (0.5 * dt) * k2, s + 0.5 * dt, p)
            k4 = f(y + dt * k3, s + dt, p)
            return y + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        return rk4_step
    return _cached("rk4_step", f, make)


def rk4_kernel(f) -> ds.Kernel:
    """Kernel ``(y, params, t0, dt)``: y[t+1, i] = rk4_step(y[t, i], t0 + t dt, dt, params[i]) for all t.

    Independent ODEs dy/ds = f(y, s, p), one per element i.  y: (T + 1, n)
    numbers or vectors, y[0] the initial states; params: (n,) numbers or vectors.
    """
    step = rk4_step_func(f)

    def make(f):
        @ds.kernel
        def rk4_trajectory(y, params, t0: float, dt: float):
            for t in ds.serial(range(y.shape[0] - 1)):
                for i in range(y.shape[1]):
                    y[t + 1, i] = step(y[t, i], t0 + t * dt, dt, params[i])
        return rk4_trajectory
    return _cached("rk4_kernel", f, make)


def rk4_system_kernel(rhs) -> ds.Kernel:
    """Kernel ``(y, y1, y2, y3, k1, k2, k3, k4, t0, dt)``: RK4 for a coupled system.

    ``rhs(Y, r, i, s)`` is a ``@ds.func`` returning dy_i/ds from the state
    row ``Y[r, :]`` (it may read any element of that row: neighbours, ...).
    y: (T + 1, n), y[0] the initial state; the stage states y1..y3 and
    slopes k1..k4: (T, n) scratch arrays (give them requires_grad=True when
    y has it).  Every element is written once, so the trajectory is
    differentiable.
    """
    def make(rhs):
        @ds.kernel
        def rk4_system(y, y1, y2, y3, k1, k2, k3, k4, t0: float, dt: float):
            n = y.shape[1]
            for t in ds.serial(range(y.shape[0] - 1)):
                s = t0 + t * dt
                for i in range(n):
                    k1[t, i] = rhs(y, t, i, s)
                for i in range(n):
                    y1[t, i] = y[t, i] + (0.5 * dt) * k1[t, i]
                for i in range(n):
                    k2[t, i] = rhs(y1, t, i, s + 0.5 * dt)
                for i in range(n):
                    y2[t, i] = y[t, i] + (0.5 * dt) * k2[t, i]
                for i in range(n):
                    k3[t, i] = rhs(y2, t, i, s + 0.5 * dt)
                for i in range(n):
                    y3[t, i] = y[t, i] + dt * k3[t, i]
                for i in range(n):
                    k4[t, i] = rhs(y3, t, i, s + dt)
                for i in range(n):
                    y[t + 1, i] = y[t, i] + (dt / 6.0) * (k1[t, i] + 2.0 * k2[t, i] + 2.0 * k3[t, i] + k4[t, i])
        return rk4_system
    return _cached("rk4_system", rhs, make)


def symplectic_euler_kernel(accel) -> ds.Kernel:
    """Kernel ``(x, v, dt)``: semi-implicit Euler over a whole trajectory in one launch.

    ``accel(x, v, t, i)`` is a ``@ds.func`` returning particle i's
    acceleration from the state at step t (it may read any particle of row
    t).  x, v: (T + 1, n) numbers or vectors; row 0 the initial state.
    """
    def make(accel):
        @ds.kernel
        def symplectic_euler(x, v, dt: float):
            for t in ds.serial(range(x.shape[0] - 1)):
                for i in range(x.shape[1]):
                    semi_implicit_euler(x, v, accel(x, v, t, i), t, i, dt)
        return symplectic_euler
    return _cached("euler", accel, make)


def velocity_verlet_kernel(accel) -> ds.Kernel:
    """Kernel ``(x, v, a, dt)``: velocity Verlet over a whole trajectory in one launch.

    ``accel(x, t, i)`` is a ``@ds.func`` returning particle i's acceleration
    from the positions of row t.  x, v, a: (T + 1, n) numbers or vectors;
    rows 0 of x and v the initial state (a is filled in).
    """
    def make(accel):
        @ds.kernel
        def velocity_verlet(x, v, a, dt: float):
            n = x.shape[1]
            for i in range(n):
                a[0, i] = accel(x, 0, i)
            for t in ds.serial(range(x.shape[0] - 1)):
                for i in range(n):
                    verlet_position(x, v, a, t, i, dt)
                for i in range(n):
                    a[t + 1, i] = accel(x, t + 1, i)
                for i in range(n):
                    verlet_velocity(v, a, t, i, dt)
        return velocity_verlet
    return _cached("verlet", accel, make)
