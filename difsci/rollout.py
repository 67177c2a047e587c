"""``ds.Rollout``: gradients of long simulations in bounded memory (binomial checkpointing).

A rollout runs ``step(t, *state, *next_state)`` for ``t = 0 … steps-1``; difsci owns the buffers of
the next state. Under a Tape the forward run keeps at most ``checkpoints`` snapshots of the state;
``tape.backward`` reverses the steps last to first, recomputing each step's input from the nearest
snapshot. Snapshot positions follow the binomial schedule (Griewank 1992), which minimises the number
of recomputed steps for the given memory:

    advances(n, c) = r·n − C(c + 1 + r, c + 2),   r the least integer with C(c + 1 + r, c + 1) ≥ n,

the number of forward steps needed to reverse ``n`` steps from a stored start state with ``c`` more
snapshot slots (``advances(n, 0) = n(n−1)/2``). Each step's adjoint re-runs that step once, recorded,
and then runs its kernels' adjoints, so gradients are those of the plain Tape to rounding.
"""
from __future__ import annotations

import sys
from math import comb

import numpy as np

from .array import Array
from .errors import AutodiffError
from .tape import Tape, current_tape, paused


# --------------------------------------------------------------------- the schedule
def advances(n: int, c: int) -> int:
    """Fewest forward steps to reverse ``n`` steps holding the start state and ``c`` snapshot slots."""
    if n <= 1:
        return 0
    if c <= 0:
        return n * (n - 1) // 2
    s = c + 1                               # snapshots counting the start state
    r = 0
    while comb(s + r, s) < n:
        r += 1
    return r * n - comb(s + r, s + 1)


def split(n: int, c: int) -> int:
    """Where to put the next snapshot (offset in 1 … n-1) when reversing ``n`` steps with ``c ≥ 1`` slots.

    The cost m + advances(n-m, c-1) + advances(m, c) is convex in m (both terms are convex: their slopes,
    the repetition numbers, never decrease), so the smallest minimiser is found by bisection on the slope."""
    if c >= n - 1:
        return 1

    def cost(m):
        return m + advances(n - m, c - 1) + advances(m, c)

    lo, hi = 1, n - 1                       # smallest m with cost(m+1) - cost(m) >= 0
    while lo < hi:
        mid = (lo + hi) // 2
        if cost(mid + 1) - cost(mid) >= 0:
            hi = mid
        else:
            lo = mid + 1
    return lo


def first_descent(n: int, c: int) -> list:
    """Snapshot positions that the forward run stores (those the reversal needs first)."""
    out, s = [], 0
    while n - s > 1 and c > 0:
        s += split(n - s, c)
        out.append(s)
        c -= 1
    return out


def predicted_forward_steps(steps: int, checkpoints: int | None) -> int:
    """Forward steps executed by ``run()`` plus ``backward``: the run, the recomputations, and one recorded
    re-run of each step before its adjoint."""
    c = steps - 1 if checkpoints is None else checkpoints
    return steps + (advances(steps, c) - (steps - 1)) + steps


# --------------------------------------------------------------------- the rollout
class Rollout:
    """``ds.Rollout(step, state=[x, v], steps=N, checkpoints=C)`` (API.md §4, "Long simulations").

    ``step(t, *state, *next_state)`` launches kernels that read the state and write every next-state array.
    ``run()`` advances ``steps`` steps from the ``state`` arrays (which it does not modify) into
    ``self.state``. Under a Tape it keeps at most ``checkpoints`` snapshots (``None``: every step) and
    records one entry whose backward sends the gradient of ``self.state`` to the initial state's ``.grad``
    and to every ``requires_grad`` array the step's kernels read. ``stats`` counts the work done.
    """

    def __init__(self, step, state, steps: int, checkpoints: int | None = None):
        if not callable(step):
            raise TypeError(f"ds.Rollout: step must be a function step(t, *state, *next_state), got {type(step).__name__}")
        if isinstance(state, Array):
            state = [state]
        state = list(state)
        if not state or not all(isinstance(a, Array) for a in state):
            raise TypeError("ds.Rollout: state must be a non-empty list of ds.Array")
        if not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"ds.Rollout: steps must be a positive integer, got {steps!r}")
        if checkpoints is not None and (not isinstance(checkpoints, (int, np.integer)) or checkpoints < 0):
            raise ValueError(f"ds.Rollout: checkpoints must be None or an integer >= 0, got {checkpoints!r}")
        devs = {a.device for a in state}
        if len(devs) > 1:
            raise ValueError(f"ds.Rollout: the state arrays are on different devices: {sorted(devs)}")
        self.step = step
        self.initial = state
        self.steps = int(steps)
        self.checkpoints = None if checkpoints is None else int(checkpoints)
        self._slots = self.steps - 1 if checkpoints is None else min(int(checkpoints), self.steps - 1)
        # the state after the last step, and two working buffers for the steps in between
        self.state = [_like(a, requires_grad=True) for a in state]
        self._work = [[_like(a) for a in state] for _ in range(2)]
        self._gwork = None      # two gradient buffers for the state, allocated by the first backward
        self.stats = {}
        self._n_snap = 0
        self._hand = None
        self._generation = 0    # runs recorded so far: a recorded run's backward needs to be the latest
        self._pool = []         # memory of dropped snapshots, reused (never more than `checkpoints` in all)

    @property
    def state_bytes(self) -> int:
        """Bytes of one copy of the state (one snapshot)."""
        return int(sum(a.data.nbytes for a in self.initial))

    def __repr__(self):
        return f"ds.Rollout({getattr(self.step, '__name__', 'step')}, steps={self.steps}, checkpoints={self.checkpoints})"

    # ------------------------------------------------------------------ running steps
    def _launch(self, t, cur, nxt):
        self.step(t, *cur, *nxt)
        self.stats["forward_steps"] += 1

    def _advance(self, src, s, t, last_into=None):
        """Run steps s … t-1 from state s held in ``src`` (read only); returns the arrays holding state t,
        a working buffer (or ``last_into``, which the last step writes)."""
        self._hand = None               # the working buffers are about to change
        cur = src
        for k in range(s, t):
            if last_into is not None and k == t - 1:
                nxt = last_into
            else:
                nxt = self._work[1] if cur is self._work[0] else self._work[0]
            self._launch(k, self._wrap(cur), nxt)
            cur = nxt
        return cur

    def _wrap(self, arrays, grads=None):
        if grads is None and all(isinstance(a, Array) for a in arrays):
            return arrays
        out = []
        for k, (a, proto) in enumerate(zip(arrays, self.initial)):
            data = a.data if isinstance(a, Array) else a
            g = grads[k] if grads is not None else None
            out.append(Array(data, proto.elem, g is not None, g, proto.device))
        return out

    def _snapshot(self, arrays):
        """A copy of the state in ``arrays``."""
        buf = self._new_snapshot()
        for dst, src in zip(buf, arrays):
            _copy_into(dst, src.data if isinstance(src, Array) else src)
        return buf

    def _store(self, s, src, m):
        """A snapshot of state m, advancing from state s in ``src``: the last step writes straight into it."""
        if self._hand is not None and self._hand[0] == m:
            return self._snapshot(self._state_at(s, src, m))
        src = self._state_at(s, src, m - 1)
        buf = self._new_snapshot()
        self._advance(src, m - 1, m, last_into=self._wrap(buf))
        return buf

    def _new_snapshot(self):
        """Memory for one more snapshot (a dropped one's when there is one)."""
        self._n_snap += 1
        if self._n_snap > self.stats["max_snapshots"]:
            self.stats["max_snapshots"] = self._n_snap
            self.stats["max_snapshot_bytes"] = self._n_snap * self.state_bytes
        return self._pool.pop() if self._pool else [_empty_like(a.data) for a in self.initial]

    def _drop(self, snaps, m):
        self._pool.append(snaps.pop(m))
        self._n_snap -= 1

    def run(self) -> list:
        """Advance ``steps`` steps from the initial state into ``self.state`` (returned)."""
        self.stats = {"forward_steps": 0, "adjoint_steps": 0, "max_snapshots": 0, "max_snapshot_bytes": 0,
                      "checkpoints": self.checkpoints}
        self._n_snap = 0
        tape = current_tape()
        n = self.steps
        if tape is None:
            self._advance(self.initial, 0, n, last_into=self.state)
            return self.state
        if any(getattr(k, "rollout", None) is self for k, _, spec in tape.launches if spec is None):
            raise AutodiffError(
                "ds.Rollout: this rollout already ran on this Tape; running it again overwrites the state "
                "arrays that the first run's gradient needs", None,
                "create a second ds.Rollout for a second simulation on the same Tape")
        self._generation += 1
        # step 0 runs recorded on a probe tape: which arrays does a step read and write?
        probe = Tape()
        nxt0 = self.state if n == 1 else self._work[0]
        with probe:
            self._launch(0, self.initial, nxt0)
        params, scratch = self._classify(probe, self.initial, nxt0)
        with paused():
            snaps = {}
            positions = set(first_descent(n, self._slots))
            cur, held = nxt0, self.initial          # held: the arrays holding state n-1 at the end
            if 1 in positions:
                snaps[1] = self._snapshot(cur)
            for k in range(1, n):
                held = cur
                if k == n - 1:
                    nxt = self.state
                elif k + 1 in positions:            # the step writes the snapshot itself: no copy
                    snaps[k + 1] = self._new_snapshot()
                    nxt = self._wrap(snaps[k + 1])
                else:
                    nxt = self._work[0 if cur is not self._work[0] else 1]
                self._launch(k, self._wrap(cur), nxt)
                cur = nxt
        # the arrays holding state n-1 are still intact: the reversal starts from them
        hand = (n - 1, held)
        run_state = {"snaps": snaps, "hand": hand, "scratch": scratch, "generation": self._generation}
        op = tape.record_custom(lambda: self._backward(run_state), reads=list(self.initial) + params,
                                writes=list(self.state), name=f"Rollout({getattr(self.step, '__name__', 'step')})")
        op.rollout = self
        return self.state

    def _classify(self, probe: Tape, cur, nxt):
        """(arrays the step reads as parameters, arrays it writes as scratch); errors for state misuse."""
        cur_ids = {id(_base(a)) for a in cur}
        nxt_ids = {id(_base(a)) for a in nxt}
        written_ids, params, scratch, seen = set(), [], [], set()
        for kernel, args, spec in probe.launches:
            if spec is None:
                rd = [(p, a) for p, a in zip(kernel.params, args) if p in kernel.spec.reads]
                wr = [(p, a) for p, a in zip(kernel.params, args) if p in kernel.spec.writes]
            else:
                rd = [(p, a) for p, a in zip(kernel.src.params, args) if p in spec.reads]
                wr = [(p, a) for p, a in zip(kernel.src.params, args) if p in spec.writes]
            name = kernel.src.name if hasattr(kernel, "src") else kernel.__name__
            for p, a in rd:
                if not isinstance(a, Array):
                    continue
                b = id(_base(a))
                if b in cur_ids or b in nxt_ids:
                    continue
                if b not in written_ids and b not in seen:
                    seen.add(b)
                    params.append(a)
            for p, a in wr:
                if not isinstance(a, Array):
                    continue
                b = id(_base(a))
                if b in cur_ids:
                    raise AutodiffError(
                        f"ds.Rollout: the step writes the current state (kernel `{name}`, parameter `{p}`); "
                        "a step must read the state and write the next state", None,
                        "write the new values into the next-state arrays the step is given", name)
                if b in seen:
                    raise AutodiffError(
                        f"ds.Rollout: kernel `{name}` writes an array (parameter `{p}`) that the step read "
                        "before writing it, so it carries values from one step to the next", None,
                        "make that array part of the rollout's state", name)
                written_ids.add(b)
                if b not in nxt_ids and all(id(_base(s)) != b for s in scratch):
                    scratch.append(a)
        missing = [k for k, a in enumerate(nxt) if id(_base(a)) not in written_ids]
        if missing:
            raise ValueError(f"ds.Rollout: the step does not write next-state array(s) {missing} "
                             "(state entries by position); every next-state array must be written each step")
        return params, scratch

    # ------------------------------------------------------------------ the reversal
    def _backward(self, run_state):
        n = self.steps
        if self._gwork is None:
            self._gwork = [[_like(a) for a in self.initial] for _ in range(2)]
        if run_state["generation"] != self._generation:
            raise AutodiffError(
                "ds.Rollout: the rollout ran again (on another Tape) after the run this Tape recorded, so the "
                "final state that the loss read is gone", None,
                "call backward before running the same ds.Rollout again, or use one ds.Rollout per Tape")
        snaps = run_state["snaps"]
        self._hand = run_state.pop("hand", None)    # valid for the first backward only
        self._scratch = run_state["scratch"]
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 4 * self._slots + 1000))
        try:
            self._reverse(0, n, self._slots, snaps)
        finally:
            sys.setrecursionlimit(limit)
            self._hand = None

    def _state_at(self, s, src, t):
        """Data arrays holding state t, advancing from state s held in ``src``."""
        if self._hand is not None and self._hand[0] == t:
            held, self._hand = self._hand[1], None      # the next steps overwrite the working buffers
            return held
        return self._advance(src, s, t)

    def _source(self, s, snaps):
        return self.initial if s == 0 else snaps[s]

    def _reverse(self, s, e, c, snaps):
        """Reverse steps s … e-1 (state s is stored) with c free snapshot slots."""
        while e > s:
            src = self._source(s, snaps)
            if e - s == 1:
                self._leaf(s, src)
                return
            if c == 0:
                for t in range(e - 1, s - 1, -1):
                    self._leaf(t, self._state_at(s, src, t) if t > s else src)
                return
            if c >= e - s - 1:              # room for every state in between
                cur = src
                for k in range(s + 1, e):
                    if k not in snaps:
                        snaps[k] = self._store(k - 1, cur, k)
                    cur = snaps[k]
                for t in range(e - 1, s - 1, -1):
                    self._leaf(t, self._source(t, snaps))
                    if t > s:
                        self._drop(snaps, t)
                return
            m = s + split(e - s, c)
            if m not in snaps:
                snaps[m] = self._store(s, src, m)
            self._reverse(m, e, c - 1, snaps)
            self._drop(snaps, m)
            e = m

    def _leaf(self, t, src):
        """Re-run step t recorded, from state t in ``src``, and run its adjoint."""
        n = self.steps
        if src is self.initial:
            cur = self.initial                  # the gradient of the initial state accumulates in its .grad
        else:
            g_out = self._gwork[t % 2]
            for g in g_out:
                g.fill(0)
            cur = self._wrap(src, g_out)
        src_data = {id(_base(a)) for a in cur}
        w = self._work[0] if id(_base(self._work[0][0])) not in src_data else self._work[1]
        g_in = [a.grad for a in self.state] if t == n - 1 else self._gwork[(t + 1) % 2]
        nxt = self._wrap(w, g_in)
        for a in self._scratch:
            a.zero_grad()
        inner = Tape()
        with inner:
            self._launch(t, cur, nxt)
        inner.run_adjoints()
        self.stats["adjoint_steps"] += 1


def _base(a):
    d = a.data if isinstance(a, Array) else a
    while isinstance(d, np.ndarray) and d.base is not None and isinstance(d.base, np.ndarray):
        d = d.base
    return d


def _like(a: Array, requires_grad=False) -> Array:
    from .array import zeros_like
    return zeros_like(a, requires_grad)


def _empty_like(d):
    if isinstance(d, np.ndarray):
        return np.empty_like(d)
    from .lang.backends import devices
    return devices.empty(d.shape, d.dtype)


def _copy_into(dst, src):
    if isinstance(dst, np.ndarray):
        np.copyto(dst, src)
    else:
        dst.copy_to_device(src)
