"""2-D soft robot by MLS-MPM with actuated fibres: optimise the actuation so the body moves right

An elastic two-legged body (>= 5000 particles on a 64 x 64 grid) stands on a
sticky floor.  Its particles are grouped into actuators; each pulls along
vertical fibres with a stress act(t) F A F^T (A = e_y e_y^T) whose strength
comes from an open-loop controller, act_a(t) = tanh(sum_k W[a, k] sin(omega t +
2 pi k / K) + b[a]).  We optimise W and b so that the particles' mean x
position after T steps is as large as possible -- DiffTaichi's ``diffmpm``.

One time step of MLS-MPM (Hu et al. 2018) is five launches:
  stress      F <- (I + dt C) F, fixed-corotated elastic + fibre stress -> MLS affine matrix
  p2g2d       particle mass and momentum to the grid       (difsci.kernels)
  grid_update momentum -> velocity, gravity, walls, sticky floor
  g2p2d       grid velocity back to the particles (v, C)   (difsci.kernels)
  advect      x <- x + dt v
Every quantity has a time axis (x[t], F[t], grid[t], ...), so the Tape can
replay the launches backwards (API section 5).

    difsci run diffmpm --plot diffmpm.png --gif diffmpm.gif
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import difsci as ds
import difsci.kernels as dk

GRAVITY = -10.0
E, NU = 40.0, 0.2                                  # Young's modulus and Poisson ratio of the body
MU, LAMBDA = E / (2 * (1 + NU)), E * NU / ((1 + NU) * (1 - 2 * NU))
ACT_STRENGTH = 8.0
N_SIN = 4
OMEGA = 20.0
BOUND = 3                                          # wall thickness in cells


@ds.kernel
def controller(W: ds.f64[:, :], b: ds.f64[:], dt: float, act: ds.f64[:, :]):
    """act[t, a] = tanh(sum_k W[a, k] sin(omega t dt + 2 pi k / K) + b[a]) for all steps at once."""
    for t, a in ds.ndrange(act.shape[0], act.shape[1]):
        s = b[a]
        for k in range(W.shape[1]):
            s = s + W[a, k] * ds.sin(OMEGA * dt * t + 2.0 * np.pi * k / W.shape[1])
        act[t, a] = ds.tanh(s)


@ds.kernel
def stress(F: ds.mat2[:], C: ds.mat2[:], act: ds.f64[:], actuator: ds.i64[:], vol: float, mass: float,
           dt: float, dx: float, F_new: ds.mat2[:], affine: ds.mat2[:]):
    """F_new = (I + dt C) F; affine = MLS-MPM momentum matrix from the (Kirchhoff) stress at F_new."""
    for p in range(F.shape[0]):
        Fn = (ds.identity(2) + dt * C[p]) @ F[p]
        F_new[p] = Fn
        R, _ = ds.polar_decompose2d(Fn)                  # F = R S: R the rotation
        J = ds.det(Fn)
        tau = 2.0 * MU * (Fn - R) @ ds.transpose(Fn) + LAMBDA * J * (J - 1.0) * ds.identity(2)
        a = actuator[p]
        if a >= 0:                                   # a fibre along the body's vertical axis
            fibre = Fn @ ds.vec2(0.0, 1.0)
            tau = tau + (ACT_STRENGTH * act[a]) * ds.outer(fibre, fibre)
        affine[p] = dk.particles.mls_affine(tau, C[p], mass, vol, dt, dx)


@ds.kernel
def grid_update(grid_m: ds.f64[:, :], grid_mv: ds.vec2[:, :], dt: float, grid_v: ds.vec2[:, :]):
    """Velocity = momentum / mass + gravity; walls stop outward motion, the floor is sticky."""
    n = grid_m.shape[0]
    for i, j in ds.ndrange(n, n):
        v = ds.vec2(0.0, 0.0)
        if grid_m[i, j] > 0.0:
            v = grid_mv[i, j] / grid_m[i, j] + ds.vec2(0.0, dt * GRAVITY)
        if j < BOUND and v[1] < 0.0:
            v = ds.vec2(0.0, 0.0)
        if j > n - BOUND and v[1] > 0.0:
            v = ds.vec2(v[0], 0.0)
        if (i < BOUND and v[0] < 0.0) or (i > n - BOUND and v[0] > 0.0):
            v = ds.vec2(0.0, v[1])
        grid_v[i, j] = v


@ds.kernel
def advect(x: ds.vec2[:], v: ds.vec2[:], dt: float, x_new: ds.vec2[:]):
    for p in range(x.shape[0]):
        x_new[p] = x[p] + dt * v[p]


@ds.kernel
def mean_x(x: ds.vec2[:], loss: ds.f64[()]):
    """loss = -(mean x coordinate of the particles)."""
    for p in range(x.shape[0]):
        loss[None] += -x[p][0] / x.shape[0]


def robot(dx: float, per_cell: int, size: str):
    """Particles filling a body on two legs; actuator ids by region (-1: passive).

    Returns positions (P, 2), actuator ids (P,), number of actuators.
    """
    if size == "small":
        blocks = [(4, 4, 6, 2), (4, 2, 2, 2), (8, 2, 2, 2)]               # (x0, y0, w, h) in cells
    else:
        blocks = [(6, 9, 28, 8), (6, 3, 9, 6), (25, 3, 9, 6)]             # body, back leg, front leg
    pts = []
    for x0, y0, w, hh in blocks:
        gx, gy = np.meshgrid(np.arange(w * per_cell), np.arange(hh * per_cell), indexing="ij")
        pts.append(np.stack([(x0 + (gx.ravel() + 0.5) / per_cell), (y0 + (gy.ravel() + 0.5) / per_cell)], 1))
    pts = np.unique(np.concatenate(pts), axis=0) * dx
    # actuators: four columns across the body; in each, the legs' part and the lower body's part
    x_min = pts[:, 0].min()
    width = pts[:, 0].max() - x_min
    legs_top = blocks[0][1] * dx
    column = np.clip(((pts[:, 0] - x_min) / width * 4).astype(int), 0, 3)
    ids = np.where(pts[:, 1] < legs_top, column, -1)
    lower_body = (pts[:, 1] >= legs_top) & (pts[:, 1] < legs_top + 0.5 * blocks[0][3] * dx)
    ids = np.where(lower_body, 4 + column, ids)
    return pts, ids.astype(np.int64), 8


class DiffMPM:
    """Particles, grids and controller; the parameters are ``self.W`` and ``self.b``."""

    def __init__(self, size: str = "default", seed: int = 0):
        self.n, self.T, per_cell = (16, 20, 2) if size == "small" else (64, 400, 4)
        self.dx = 1.0 / self.n
        self.dt = 1.5e-3
        x0, actuator, n_act = robot(self.dx, per_cell, size)
        self.P = P = len(x0)
        self.vol = (self.dx / per_cell) ** 2
        self.mass = self.vol * 1.0                       # density 1
        self.actuator = ds.array(actuator)
        self.masses = ds.array(np.full(P, self.mass))
        rng = np.random.default_rng(seed)
        self.W = ds.array(0.1 * rng.standard_normal((n_act, N_SIN)), requires_grad=True)
        self.b = ds.zeros(n_act, requires_grad=True)
        T, n = self.T, self.n
        self.act = ds.zeros((T, n_act), requires_grad=True)
        self.x = ds.zeros((T + 1, P), dtype=ds.vec2, requires_grad=True)
        self.x.numpy()[0] = x0
        self.v = ds.zeros((T + 1, P), dtype=ds.vec2, requires_grad=True)
        self.C = ds.zeros((T + 1, P), dtype=ds.mat2, requires_grad=True)
        self.F = ds.zeros((T + 1, P), dtype=ds.mat2, requires_grad=True)
        self.F.numpy()[0] = np.eye(2)
        self.affine = ds.zeros((T, P), dtype=ds.mat2, requires_grad=True)
        self.grid_m = ds.zeros((T, n, n), requires_grad=True)
        self.grid_mv = ds.zeros((T, n, n), dtype=ds.vec2, requires_grad=True)
        self.grid_v = ds.zeros((T, n, n), dtype=ds.vec2, requires_grad=True)
        self.loss_arr = ds.zeros((), requires_grad=True)

    def step(self, t: int):
        dt, dx = self.dt, self.dx
        stress(self.F[t], self.C[t], self.act[t], self.actuator, self.vol, self.mass, dt, dx,
               self.F[t + 1], self.affine[t])
        dk.p2g2d(self.x[t], self.v[t], self.affine[t], self.masses, dx, self.grid_m[t], self.grid_mv[t])
        grid_update(self.grid_m[t], self.grid_mv[t], dt, self.grid_v[t])
        dk.g2p2d(self.x[t], self.grid_v[t], dx, self.v[t + 1], self.C[t + 1])
        advect(self.x[t], self.v[t + 1], dt, self.x[t + 1])

    def forward(self) -> float:
        for a in (self.grid_m, self.grid_mv, self.loss_arr):     # accumulated into: clear them
            a.fill(0.0)
        controller(self.W, self.b, self.dt, self.act)
        for t in range(self.T):
            self.step(t)
        mean_x(self.x[self.T], self.loss_arr)
        return float(self.loss_arr.numpy())

    def forward_backward(self) -> float:
        """The loss, with its gradient in ``self.W.grad`` and ``self.b.grad``."""
        with ds.Tape() as tape:
            loss = self.forward()
        tape.zero_grads()
        tape.backward(self.loss_arr)
        return loss

    def loss_and_grad(self, w: np.ndarray):
        k = self.W.numpy().size
        self.W.numpy()[...] = w[:k].reshape(self.W.shape)
        self.b.numpy()[...] = w[k:]
        loss = self.forward_backward()
        return loss, np.concatenate([self.W.grad.numpy().ravel(), self.b.grad.numpy()])

    def x0(self) -> np.ndarray:
        return np.concatenate([self.W.numpy().ravel(), self.b.numpy()])


def main(args: argparse.Namespace | None = None) -> dict:
    size = getattr(args, "size", None) or "default"
    iters = getattr(args, "iters", None) or (4 if size == "small" else 30)
    sim = DiffMPM(size)
    print(f"diffmpm: {sim.P} particles, {sim.n}x{sim.n} grid, {sim.T} steps, {iters} iterations")
    t0 = time.perf_counter()
    sim.forward_backward()                                # compiles (cached on disk afterwards)
    print(f"first forward + backward, incl. compile: {time.perf_counter() - t0:.2f} s")
    first_x = np.array(sim.x.numpy())
    opt = ds.nn.Adam([sim.W, sim.b], lr=0.1)
    losses = []
    for it in range(1, iters + 1):
        t0 = time.perf_counter()
        losses.append(sim.forward_backward())
        opt.step()
        print(f"iter {it}/{iters}  loss {losses[-1]:.3e}  ({time.perf_counter() - t0:.2f} s)")
    losses.append(sim.forward())
    moved = losses[0] - losses[-1]
    print(f"final loss {losses[-1]:.3e} (from {losses[0]:.3e}): {moved:.3f} further right")
    x = np.array(sim.x.numpy())
    if getattr(args, "plot", None):
        plot(args.plot, losses, first_x, x, sim.actuator.numpy(), sim.dt)
    if getattr(args, "gif", None):
        animate(args.gif, x, sim.actuator.numpy())
    return {"losses": losses}


def plot(path, losses, first_x, x, actuator, dt):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 3, figsize=(16, 4.5))
    ax[0].plot(losses, marker=".")
    ax[0].set(xlabel="iteration", ylabel="-mean x", title="loss")
    t = np.arange(x.shape[0]) * dt
    ax[1].plot(t, first_x[:, :, 0].mean(1), label="initial actuation")
    ax[1].plot(t, x[:, :, 0].mean(1), label="optimised actuation")
    ax[1].set(xlabel="time", ylabel="mean x", title="trajectory")
    ax[1].legend()
    ax[2].scatter(*x[0].T, s=0.3, c="0.7")
    ax[2].scatter(*x[-1].T, s=0.3, c=actuator, cmap="tab10", vmin=-1, vmax=8)
    ax[2].set(xlim=(0, 1), ylim=(0, 0.4), aspect="equal", title="start (grey) and end (coloured by actuator)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"saved {path}")


def animate(path, x, actuator):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sc = ax.scatter(*x[0].T, s=0.5, c=actuator, cmap="tab10", vmin=-1, vmax=8)
    ax.set(xlim=(0, 1), ylim=(0, 0.4), aspect="equal")
    anim = FuncAnimation(fig, lambda t: (sc.set_offsets(x[t]), ax.set_title(f"step {t}")),
                         frames=range(0, x.shape[0], max(1, x.shape[0] // 60)))
    anim.save(path, writer=PillowWriter(fps=15))
    plt.close(fig)
    print(f"saved {path}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--plot", default=None)
    p.add_argument("--gif", default=None)
    p.add_argument("--backend", choices=("cpu", "cuda", "python"), default=None)
    p.add_argument("--size", choices=("small", "default"), default="default")
    a = p.parse_args()
    if a.backend:
        ds.init(backend=a.backend)
    main(a)
