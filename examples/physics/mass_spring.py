"""2-D mass-spring robot with ground contact: train a neural controller (net.func in the step kernel) to walk right

A small robot -- point masses joined by springs, two legs under a body -- stands
on the ground: a stiff penalty force with friction (unlike a "sticky floor"
that zeroes velocities, it keeps the loss a smooth function of the weights).
Some springs are muscles: their rest length is modulated by the output of a
small MLP evaluated inside the simulation kernel (``net.func``) at every time
step, from a few clock signals sin(omega t + phase) and the robot's velocity.  The loss is minus the distance travelled by the
robot's centre of mass after T steps; reverse mode backpropagates through all
T steps (>= 1000 at the default size) into the network weights, and Adam
trains them -- DiffTaichi's ``mass_spring`` example, written in difsci.

    difsci run mass_spring --plot mass_spring.png --gif mass_spring.gif
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import difsci as ds
from difsci.kernels.particles import (  # @ds.funcs of difsci.kernels
    dashpot_force,
    spring_force,
)

DT = 0.004
GRAVITY = -4.8
GROUND = 0.1
STIFFNESS = 30000.0
DAMPING = 15.0               # velocities decay like exp(-DAMPING t) (air drag)
DASHPOT = 5.0                # damping along each spring
GROUND_K = 20000.0           # ground contact: a penalty force GROUND_K * depth ...
GRIP = 200.0                 # ... and friction -GRIP * v_x, ramped in over the first GRIP_DEPTH of depth
GRIP_DEPTH = 0.001
ACTUATION = 0.2              # a muscle's rest length varies by +-20 %
N_SIN = 4                    # clock signals fed to the controller
OMEGA = 10.0
CONTROL_IN = ds.vec(N_SIN + 2, ds.f64)     # controller input: clocks and centre-of-mass velocity


def robot(spacing: float = 0.05, size: str = "default"):
    """Masses on a grid: a body two cells high over two legs; springs between neighbours.

    Returns positions (P, 2), springs (S, 2) int, rest lengths (S,), and for each
    spring its muscle index (-1: passive).  The vertical springs are the muscles.
    """
    cols, leg_h, body_h = (3, 1, 1) if size == "small" else (5, 2, 2)
    cells = {(c, r) for c in range(cols) for r in range(leg_h, leg_h + body_h + 1)}
    cells |= {(c, r) for r in range(leg_h) for c in (0, 1, cols - 2, cols - 1)}
    nodes = sorted(cells, key=lambda cr: (cr[1], cr[0]))
    index = {cr: k for k, cr in enumerate(nodes)}
    x = np.array([(0.1 + c * spacing, GROUND + r * spacing) for c, r in nodes])
    springs, muscle = [], []
    for (c, r), a in index.items():
        for dc, dr in ((1, 0), (0, 1), (1, 1), (-1, 1)):
            b = index.get((c + dc, r + dr))
            if b is not None:
                springs.append((a, b))
                muscle.append(len([m for m in muscle if m >= 0]) if dc == 0 else -1)
    springs = np.array(springs, dtype=np.int64)
    rest = np.linalg.norm(x[springs[:, 1]] - x[springs[:, 0]], axis=1)
    return x, springs, rest, np.array(muscle, dtype=np.int64)


def make_simulate(controller):
    """The whole simulation as one kernel, for a given controller func (params, input) -> muscle activations."""

    @ds.kernel
    def simulate(x: ds.vec2[:, :], v: ds.vec2[:, :], f: ds.vec2[:, :], com_v: ds.vec2[:],
                 act: ds.f64[:, :], params: ds.f64[:], springs: ds.i64[:, :], rest: ds.f64[:],
                 muscle: ds.i64[:]):
        """x, v, f: (T + 1, P) positions, velocities, spring forces; com_v: (T + 1,); act: (T, M)."""
        P = x.shape[1]
        M = act.shape[1]
        for t in ds.serial(range(x.shape[0] - 1)):
            for p in range(P):                                   # centre-of-mass velocity
                com_v[t] += v[t, p] / P
            for k in range(1):                                   # the controller, once per step
                u = CONTROL_IN(0.0)
                for s in ds.static(range(N_SIN)):
                    u[s] = ds.sin(OMEGA * DT * t + 2.0 * np.pi * s / N_SIN)
                u[N_SIN] = com_v[t][0]
                u[N_SIN + 1] = com_v[t][1]
                a = controller(params, u)
                for m in range(M):
                    act[t, m] = a[m]
            for s in range(springs.shape[0]):                    # springs (muscles: actuated rest length)
                i = springs[s, 0]
                j = springs[s, 1]
                length = rest[s]
                if muscle[s] >= 0:
                    length = rest[s] * (1.0 + ACTUATION * act[t, muscle[s]])
                fs = spring_force(x[t, i], x[t, j], length, STIFFNESS) \
                    + dashpot_force(x[t, i], x[t, j], v[t, i], v[t, j], DASHPOT)
                f[t, i] += fs
                f[t, j] -= fs
            for p in range(P):                                   # ground contact and integration
                acc = f[t, p] + ds.vec2(0.0, GRAVITY)
                depth = GROUND - x[t, p][1]
                if depth > 0.0:                                  # a penalty, so that the loss stays smooth
                    grip = GRIP * ds.min(depth / GRIP_DEPTH, 1.0)
                    acc = acc + ds.vec2(-grip * v[t, p][0], GROUND_K * depth)
                v[t + 1, p] = ds.exp(-DT * DAMPING) * (v[t, p] + DT * acc)
                x[t + 1, p] = x[t, p] + DT * v[t + 1, p]

    return simulate


@ds.kernel
def distance(x: ds.vec2[:, :], loss: ds.f64[()]):
    """loss = -(mean x-coordinate at T - mean x-coordinate at 0)."""
    T = x.shape[0] - 1
    P = x.shape[1]
    for p in range(P):
        loss[None] += -(x[T, p][0] - x[0, p][0]) / P


class MassSpring:
    """Robot, controller network and trajectory arrays; the parameters are ``self.net.flat_parameters()``."""

    def __init__(self, size: str = "default", seed: int = 0):
        self.T = 100 if size == "small" else 1000
        x0, springs, rest, muscle = robot(size=size)
        n_muscles = int(muscle.max()) + 1
        hidden = 8      # net.func is unrolled into the kernel: a bigger net compiles much longer
        self.net = ds.nn.MLP([N_SIN + 2, hidden, n_muscles], activation="tanh", output_activation="tanh",
                             seed=seed)
        self.params = self.net.flat_parameters()
        self.simulate = make_simulate(self.net.func)
        self.springs, self.rest, self.muscle = ds.array(springs), ds.array(rest), ds.array(muscle)
        P, T = len(x0), self.T
        self.x = ds.zeros((T + 1, P), dtype=ds.vec2, requires_grad=True)
        self.x.numpy()[0] = x0
        self.v = ds.zeros((T + 1, P), dtype=ds.vec2, requires_grad=True)
        self.f = ds.zeros((T + 1, P), dtype=ds.vec2, requires_grad=True)
        self.com_v = ds.zeros(T + 1, dtype=ds.vec2, requires_grad=True)
        self.act = ds.zeros((T, n_muscles), requires_grad=True)
        self.loss_arr = ds.zeros((), requires_grad=True)

    def forward(self) -> float:
        for a in (self.f, self.com_v, self.loss_arr):             # accumulated into: clear them
            a.fill(0.0)
        self.simulate(self.x, self.v, self.f, self.com_v, self.act, self.params, self.springs, self.rest,
                      self.muscle)
        distance(self.x, self.loss_arr)
        return float(self.loss_arr.numpy())

    def forward_backward(self) -> float:
        """The loss, with its gradient in ``self.params.grad``."""
        with ds.Tape() as tape:
            loss = self.forward()
        tape.zero_grads()
        tape.backward(self.loss_arr)
        return loss

    def loss_and_grad(self, w: np.ndarray):
        self.params.numpy()[...] = w
        return self.forward_backward(), np.array(self.params.grad.numpy())

    def x0(self) -> np.ndarray:
        return np.array(self.params.numpy())


def main(args: argparse.Namespace | None = None) -> dict:
    size = getattr(args, "size", None) or "default"
    iters = getattr(args, "iters", None) or (5 if size == "small" else 100)
    sim = MassSpring(size)
    print(f"mass_spring: {sim.x.shape[1]} masses, {sim.springs.shape[0]} springs "
          f"({sim.act.shape[1]} muscles), {sim.T} steps, controller {sim.net.sizes}")
    t0 = time.perf_counter()
    sim.forward_backward()                                # compiles (cached on disk afterwards)
    print(f"first forward + backward, incl. compile: {time.perf_counter() - t0:.2f} s")
    first_x = np.array(sim.x.numpy())
    opt = ds.nn.Adam([sim.params], lr=0.02)
    losses = []
    for it in range(1, iters + 1):
        t0 = time.perf_counter()
        losses.append(sim.forward_backward())
        opt.step()
        print(f"iter {it}/{iters}  loss {losses[-1]:.3e}  ({time.perf_counter() - t0:.2f} s)")
    losses.append(sim.forward())
    print(f"final loss {losses[-1]:.3e} (from {losses[0]:.3e}): the robot walked {-losses[-1]:.3f}")
    x = np.array(sim.x.numpy())
    if getattr(args, "plot", None):
        plot(args.plot, losses, first_x, x, sim.springs.numpy())
    if getattr(args, "gif", None):
        animate(args.gif, x, sim.springs.numpy(), sim.muscle.numpy(), sim.act.numpy())
    return {"losses": losses}


def plot(path, losses, first_x, x, springs):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 3, figsize=(17, 4), gridspec_kw={"width_ratios": [1, 1, 2.2]})
    ax[0].plot(losses, marker=".")
    ax[0].set(xlabel="iteration", ylabel="-distance", title="loss")
    t = np.arange(x.shape[0]) * DT
    ax[1].plot(t, first_x[:, :, 0].mean(1), label="initial controller")
    ax[1].plot(t, x[:, :, 0].mean(1), label="trained controller")
    ax[1].set(xlabel="time", ylabel="x of the centre of mass", title="trajectory")
    ax[1].legend()
    T = x.shape[0] - 1
    for k, step in enumerate(np.linspace(0, T, 5).astype(int)):
        for i, j in springs:
            ax[2].plot(*x[step, [i, j]].T, color=plt.cm.viridis(k / 4), lw=1)
    ax[2].axhline(GROUND, color="k")
    ax[2].set(aspect="equal", title="trained gait: snapshots (dark to light)", xlabel="x")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"saved {path}")


def animate(path, x, springs, muscle, act):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.set(xlim=(x[..., 0].min() - 0.05, x[..., 0].max() + 0.05), ylim=(0.0, x[..., 1].max() + 0.05), aspect="equal")
    ax.axhline(GROUND, color="k")
    lines = [ax.plot([], [], lw=2)[0] for _ in springs]

    def show(t):
        for line, (i, j), m in zip(lines, springs, muscle):
            line.set_data(*x[t, [i, j]].T)
            a = act[min(t, len(act) - 1), m] if m >= 0 else 0.0
            line.set_color(plt.cm.coolwarm(0.5 + 0.5 * a) if m >= 0 else "0.4")
        return lines
    anim = FuncAnimation(fig, show, frames=range(0, x.shape[0], max(1, x.shape[0] // 100)))
    anim.save(path, writer=PillowWriter(fps=25))
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
