"""``ds.Tape``: records kernel launches (references, no copies) and runs their
adjoints in reverse order."""
from __future__ import annotations

import numpy as np

from .array import Array
from .config import config
from .errors import AutodiffError

_stack: list = []


class _Paused:
    """Top of the tape stack while adjoints run: launches made then are not recorded."""

    def record(self, kernel, args, spec):
        pass

    def validating(self) -> bool:
        return False


_PAUSED = _Paused()


def current_tape():
    top = _stack[-1] if _stack else None
    return None if top is _PAUSED else top


class Tape:
    """Record launches inside ``with ds.Tape() as tape:``; ``tape.backward(loss)``."""

    def __init__(self, validate: bool = False):
        self.launches: list = []
        self.validate = validate
        self._log = None

    def validating(self) -> bool:
        """Check the access rule at run time (``validate=True`` or ``ds.init(debug=True)``)?"""
        return self.validate or config.debug

    def validated_launch(self, kernel, args, spec) -> None:
        """Run a launch instrumented (slow), raising AutodiffError on an access-rule violation."""
        from .lang.autodiff.validate import AccessLog
        if self._log is None:
            self._log = AccessLog()
        self._log.launch(kernel, spec, args)

    def __enter__(self):
        _stack.append(self)
        return self

    def __exit__(self, *exc):
        for k in range(len(_stack) - 1, -1, -1):
            if _stack[k] is self:
                del _stack[k]
                break
        return False

    def record(self, kernel, args, spec):
        self.launches.append((kernel, tuple(args), spec))

    def record_custom(self, backward, reads=(), writes=(), name="custom"):
        """Record a step that is not a kernel launch (a halo exchange, a checkpointed rollout …).

        ``backward()`` runs in its place during ``tape.backward``: it reads the ``.grad`` of
        ``writes`` and accumulates into the ``.grad`` of ``reads``. ``reads``/``writes`` are the
        arrays it reads and writes (for ``zero_grads`` and the cut-path check)."""
        op = CustomOp(backward, tuple(reads), tuple(writes), name)
        self.launches.append((op, op.reads + op.writes, None))
        return op

    # -------------------------------------------------------------- checks
    def _check_cut_paths(self):
        """A constant array written from gradient-carrying data and read later drops gradient: refuse."""
        tainted = {}   # id(buffer base) -> (kernel, param)
        for kernel, args, spec in self.launches:
            if spec is None:        # a custom step: its reads and writes are named on the op
                params, spec = kernel.params, kernel.spec
            else:
                params = kernel.src.params
            carries = any(isinstance(a, Array) and a.requires_grad for a in args)
            for p, a in zip(params, args):
                if p in spec.reads:
                    b = _base(a)
                    if b is not None and id(b) in tainted:
                        wk, wp = tainted[id(b)]
                        raise AutodiffError(
                            f"the gradient would have to flow through an array without requires_grad: "
                            f"kernel `{_name(wk)}` wrote it (parameter `{wp}`) from data that needs gradients, "
                            f"and kernel `{_name(kernel)}` reads it (parameter `{p}`)",
                            None, "create that array with requires_grad=True", _name(kernel))
            if carries:
                for p, a in zip(params, args):
                    if p in spec.writes and not (isinstance(a, Array) and a.requires_grad):
                        if isinstance(a, (Array, np.ndarray)) and _dtype(a).kind == "f":
                            tainted[id(_base(a))] = (kernel, p)

    # ------------------------------------------------------------ backward
    def backward(self, out: Array, seed=None) -> None:
        """Set ``out.grad`` to the seed (1 for a scalar) and run the adjoints in reverse.

        The other arrays' gradients accumulate (zero them with ``zero_grads``)."""
        if not isinstance(out, Array) or out.grad is None:
            raise AutodiffError("backward needs a ds.Array created with requires_grad=True")
        if seed is None:
            if out.size != 1:
                raise ValueError(f"backward(out) without a seed needs a one-element array; out has shape {out.shape}")
            _seed(out.grad, 1.0)
        else:
            s = seed.numpy() if isinstance(seed, Array) else np.asarray(seed)
            if s.shape != out.data.shape:
                raise ValueError(f"the seed has shape {s.shape}, but out has shape {out.data.shape}")
            _seed(out.grad, s)
        self._check_cut_paths()
        self.run_adjoints()

    def run_adjoints(self) -> None:
        """Run the recorded adjoints in reverse order (no seeding, no checks)."""
        _stack.append(_PAUSED)      # launches made by adjoints (hand-written ones) are not recorded
        try:
            for kernel, args, spec in reversed(self.launches):
                if spec is None:
                    kernel.backward()
                else:
                    kernel.adjoint.from_tape(args, spec)
        finally:
            _stack.pop()

    def zero_grads(self) -> None:
        for _, args, _ in self.launches:
            for a in args:
                if isinstance(a, Array):
                    a.zero_grad()

    def reset(self) -> None:
        self.launches.clear()


class CustomOp:
    """A recorded non-kernel step (see ``Tape.record_custom``)."""

    def __init__(self, backward, reads, writes, name):
        self.backward = backward
        self.__name__ = name
        self.reads = reads
        self.writes = writes
        n_r = len(reads)
        # parameter names for the cut-path check, which looks at (params, args, spec.reads/.writes)
        self.params = tuple(f"input {k}" for k in range(n_r)) + tuple(f"output {k}" for k in range(len(writes)))
        self.spec = _OpSpec(set(self.params[:n_r]), set(self.params[n_r:]))


class _OpSpec:
    def __init__(self, reads, writes):
        self.reads, self.writes = reads, writes


def _name(k):
    return k.src.name if hasattr(k, "src") else k.__name__


def _base(a):
    if isinstance(a, Array):
        a = a.data
    if not isinstance(a, np.ndarray):
        return None
    while a.base is not None and isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _dtype(a):
    return a.data.dtype if isinstance(a, Array) else a.dtype     # no host copy of a device array


def _seed(g: Array, value) -> None:
    """``g = value`` (the seed replaces what an earlier backward left in the output's gradient,
    so a training loop that forgets ``zero_grads`` does not scale its gradient by 1, 2, 3 …);
    in place on the CPU, through devices on a GPU."""
    if g.device == "cpu":
        g.data[...] = value
    else:
        from .lang.backends import devices
        devices.copy_into(g.data, np.broadcast_to(np.asarray(value, dtype=g.data.dtype), g.data.shape).copy())


class paused:
    """``with paused():`` launches made inside are not recorded on the active Tape."""

    def __enter__(self):
        _stack.append(_PAUSED)
        return self

    def __exit__(self, *exc):
        for k in range(len(_stack) - 1, -1, -1):
            if _stack[k] is _PAUSED:
                del _stack[k]
                break
        return False
