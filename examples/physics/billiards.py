"""2-D billiards with elastic collisions: optimise the cue ball's velocity so a target ball reaches a point

A cue ball is shot at a triangle rack of balls on a (large) table with rolling
friction.  Equal-mass balls collide elastically: at contact they exchange the
normal components of their velocities (pairwise: a ball touching two others in
one step gets both impulses, which is not exact for simultaneous contacts, so
the rack is set up with small gaps).  A collision that starts inside a time
step moves the ball with its old velocity until the time of impact and with
its new one after it (DiffTaichi's "time of impact" correction) -- without it
positions jump by up to dt |v| when a collision moves from one step to the
next, and the gradient is much less useful.

The whole game (T steps) is one kernel launch; reverse mode differentiates the
final distance between the target ball and the goal with respect to the cue
ball's initial velocity, and gradient descent (with a simple step-length
control) aims the shot.

    difsci run billiards --plot billiards.png --gif billiards.gif
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import difsci as ds

RADIUS = 0.03
FRICTION = 1.0        # velocities decay like exp(-FRICTION t)
GOAL = (0.9, 0.75)


@ds.kernel
def simulate(x: ds.vec2[:, :], v: ds.vec2[:, :], x_start: ds.vec2[:], cue_v: ds.f64[:],
             dt: float, radius: float, friction: float):
    """x[t, b], v[t, b]: position and velocity of ball b after t steps (ball 0 is the cue ball)."""
    n = x.shape[1]
    decay = ds.exp(-friction * dt)
    for b in range(n):
        x[0, b] = x_start[b]
        v[0, b] = ds.vec2(0.0, 0.0)
        if b == 0:
            v[0, b] = ds.vec2(cue_v[0], cue_v[1])
    for t in ds.serial(range(x.shape[0] - 1)):
        for i in range(n):
            impulse = ds.vec2(0.0, 0.0)
            shift = ds.vec2(0.0, 0.0)             # position correction for the time of impact
            for j in range(n):
                if j != i:
                    d = x[t, j] - x[t, i]
                    dv = v[t, j] - v[t, i]
                    if ds.norm(d + dt * dv) < 2.0 * radius:      # they touch during this step
                        normal = ds.normalize(d)
                        approach = ds.dot(dv, normal)             # < 0: closing in
                        if approach < 0.0:
                            toi = ds.clamp((ds.norm(d) - 2.0 * radius) / -approach, 0.0, dt)
                            impulse = impulse + approach * normal
                            shift = shift - toi * approach * normal
            v[t + 1, i] = decay * (v[t, i] + impulse)
            # moved with v until the impact and with v + impulse after it
            x[t + 1, i] = x[t, i] + dt * (v[t, i] + impulse) + shift


@ds.kernel
def distance_to_goal(x: ds.vec2[:, :], target: int, goal: ds.vec2, loss: ds.f64[()]):
    """loss = |x[T, target] - goal|^2."""
    d = x[x.shape[0] - 1, target] - goal
    loss[None] = ds.dot(d, d)


def rack(rows: int, apex=(0.5, 0.5)) -> np.ndarray:
    """Cue ball first, then a triangle of rows*(rows+1)/2 balls pointing at it (a little apart)."""
    gap = 2.2 * RADIUS
    balls = [(0.1, 0.5)]
    for r in range(rows):
        for k in range(r + 1):
            balls.append((apex[0] + r * gap * np.sqrt(3.0) / 2, apex[1] + (k - r / 2) * gap))
    return np.array(balls)


class Billiards:
    """The game and its arrays; the parameter is ``self.cue_v`` (the cue ball's initial velocity)."""

    def __init__(self, size: str = "default"):
        rows, self.T = (2, 300) if size == "small" else (5, 1000)
        self.dt = 0.002
        start = rack(rows)
        self.n = len(start)
        self.target = self.n - 1                        # the last ball of the back row
        self.x_start = ds.array(start, dtype=ds.vec2)
        self.x = ds.zeros((self.T + 1, self.n), dtype=ds.vec2, requires_grad=True)
        self.v = ds.zeros((self.T + 1, self.n), dtype=ds.vec2, requires_grad=True)
        self.cue_v = ds.array(np.array([1.5, 0.0]), requires_grad=True)
        self.loss_arr = ds.zeros((), requires_grad=True)

    def forward(self) -> float:
        simulate(self.x, self.v, self.x_start, self.cue_v, self.dt, RADIUS, FRICTION)
        distance_to_goal(self.x, self.target, ds.vec2(*GOAL), self.loss_arr)
        return float(self.loss_arr.numpy())

    def forward_backward(self) -> float:
        """The loss, with d loss / d cue_v left in ``self.cue_v.grad``."""
        with ds.Tape() as tape:
            loss = self.forward()
        tape.zero_grads()
        tape.backward(self.loss_arr)
        return loss

    def loss_and_grad(self, x: np.ndarray):
        self.cue_v.numpy()[...] = x
        return self.forward_backward(), np.array(self.cue_v.grad.numpy())

    def x0(self) -> np.ndarray:
        return np.array(self.cue_v.numpy())


def main(args: argparse.Namespace | None = None) -> dict:
    size = getattr(args, "size", None) or "default"
    iters = getattr(args, "iters", None) or (10 if size == "small" else 40)
    game = Billiards(size)
    print(f"billiards: {game.n} balls, {game.T} steps, {iters} iterations")
    t0 = time.perf_counter()
    game.forward_backward()                                # compiles (cached on disk afterwards)
    print(f"first forward + backward, incl. compile: {time.perf_counter() - t0:.2f} s")
    first_x = np.array(game.x.numpy())
    # Collisions make the loss piecewise smooth: a step across a "this ball now
    # misses that one" boundary can make things worse.  So: steepest descent
    # with a step length that grows after a success and halves after a failure
    # (a rejected step costs one iteration).
    v, loss, g = game.x0(), *game.loss_and_grad(game.x0())
    step = 0.05
    losses = [loss]
    for it in range(1, iters + 1):
        t0 = time.perf_counter()
        trial = v - step * g / (np.linalg.norm(g) + 1e-300)
        trial_loss, trial_g = game.loss_and_grad(trial)
        if trial_loss < loss:
            v, loss, g, step = trial, trial_loss, trial_g, 1.5 * step
        else:
            step *= 0.5
        losses.append(loss)
        print(f"iter {it}/{iters}  loss {loss:.3e}  ({time.perf_counter() - t0:.2f} s)")
    game.cue_v.numpy()[...] = v
    final = game.forward()
    print(f"final loss {final:.3e} (from {losses[0]:.3e}); cue velocity ({v[0]:.3f}, {v[1]:.3f})")
    x = np.array(game.x.numpy())
    if getattr(args, "plot", None):
        plot(args.plot, losses, first_x, x, game.target)
    if getattr(args, "gif", None):
        animate(args.gif, x, game.target)
    return {"losses": losses}


def plot(path, losses, first_x, x, target):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.5))
    ax[0].semilogy(losses, marker=".")
    ax[0].set(xlabel="iteration", ylabel="|x_target(T) - goal|^2", title="loss")
    for a, xs, title in ((ax[1], first_x, "first shot"), (ax[2], x, "optimised shot")):
        for b in range(xs.shape[1]):
            colour = "k" if b == 0 else ("C3" if b == target else "C0")
            a.plot(xs[:, b, 0], xs[:, b, 1], color=colour, lw=0.8, alpha=0.7)
            a.add_patch(plt.Circle(xs[-1, b], RADIUS, color=colour, alpha=0.8))
        a.plot(*GOAL, "x", color="C3", ms=12, mew=3)
        a.set(xlim=(0, 1.2), ylim=(0.1, 1.0), aspect="equal", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"saved {path}")


def animate(path, x, target):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.set(xlim=(0, 1.2), ylim=(0.1, 1.0), aspect="equal")
    ax.plot(*GOAL, "x", color="C3", ms=12, mew=3)
    balls = [ax.add_patch(plt.Circle(x[0, b], RADIUS, color="k" if b == 0 else ("C3" if b == target else "C0")))
             for b in range(x.shape[1])]

    def show(t):
        for b, c in enumerate(balls):
            c.center = x[t, b]
        return balls
    anim = FuncAnimation(fig, show, frames=range(0, x.shape[0], max(1, x.shape[0] // 80)))
    anim.save(path, writer=PillowWriter(fps=20))
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
