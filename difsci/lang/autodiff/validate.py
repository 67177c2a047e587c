"""Run-time check of the global data access rule (API.md §5) for
``ds.Tape(validate=True)`` and ``ds.init(debug=True)``.

Each recorded launch then runs as the plain-Python backend's code with every
array argument wrapped in a :class:`_Tracked` view that logs which elements
are read, assigned and accumulated into.  An element once read — by this
launch or an earlier one on the same tape — must not be assigned or
accumulated into again; a violation raises ``AutodiffError`` naming the
kernel, the array and the line of the offending write (and where the
element was read).  Elements are identified by their memory address, so
views of one buffer share their history.

``a[I] += v`` is printed as a Python augmented assignment, which reads
``a[I]`` before writing it: on such a line the first read of the target is
the accumulation's own, not a read of the value.
"""
from __future__ import annotations

import re
import sys

import numpy as np

from ...errors import AutodiffError

_AUG = re.compile(r"^\s*(\w+)\[.*\]\s*[-+]=")
_MINMAX = re.compile(r"^\s*(\w+)\[.*\]\s*=\s*(min|max)\(\1\[")


class AccessLog:
    """Per tape: the first read of every element, across launches."""

    def __init__(self):
        self.read_at: dict = {}          # address -> (kernel, array, Loc)

    # ---------------------------------------------------------- launch
    def launch(self, kernel, spec, args):
        """Run ``kernel``'s launch with ``args`` instrumented (it does the launch's work)."""
        src, locmap = _python_source(spec)
        ns: dict = {}
        exec(compile(src, f"<difsci validate {kernel.__name__}>", "exec"), ns)  # noqa: S102
        run = _Run(self, kernel.__name__, src, locmap)
        ns["atomic_add"] = run.atomic("add")
        ns["atomic_min"] = run.atomic("min")
        ns["atomic_max"] = run.atomic("max")
        rt = [conv(v) for conv, v in zip(spec.convs, args) if conv is not None]
        if spec.vector_args:
            rt = [c for r in rt for c in (r if isinstance(r, tuple) else (r,))]
        wrapped = [(_Tracked(r, name, run) if isinstance(r, np.ndarray) else r)
                   for (name, _), r in zip(spec.fn.params, rt)]
        ns[spec.fn.name](*wrapped)


def _python_source(spec):
    c = spec.__dict__.setdefault("_validate_src", {})
    if "src" not in c:
        from ..compiler import render
        locmap: dict = {}
        c["src"] = render(spec.fn, "python", locmap)
        c["locmap"] = locmap
    return c["src"], c["locmap"]


class _Run:
    """One instrumented launch: maps generated lines back to the user's and logs accesses."""

    def __init__(self, log, kernel, src, locmap):
        self.log = log
        self.kernel = kernel
        self.lines = src.splitlines()
        self.locmap = locmap
        self.keys = sorted(locmap)
        self.pending: dict = {}        # (array name, line) -> address read by `a[I] += ...`

    def loc(self, lineno):
        import bisect
        k = bisect.bisect_right(self.keys, lineno) - 1
        return self.locmap[self.keys[k]] if k >= 0 else None

    def aug_target(self, lineno):
        text = self.lines[lineno - 1] if 0 < lineno <= len(self.lines) else ""
        m = _AUG.match(text) or _MINMAX.match(text)
        return m.group(1) if m else None

    # --------------------------------------------------------- events
    def read(self, arr, idx, lineno):
        for addr, _ in arr.addresses(idx):
            if self.aug_target(lineno) == arr.name and (arr.name, lineno) not in self.pending:
                self.pending[(arr.name, lineno)] = addr
                continue
            self.log.read_at.setdefault(addr, (self.kernel, arr.name, self.loc(lineno)))

    def write(self, arr, idx, lineno, mode=None):
        key = (arr.name, lineno)
        if mode is None:
            mode = "add" if self.pending.pop(key, None) is not None else "set"
        for addr, pos in arr.addresses(idx):
            prev = self.log.read_at.get(addr)
            if prev is not None:
                self.fail(arr, pos, lineno, mode, prev)

    def atomic(self, mode):
        from ..backends.atomics import py_atomic_add, py_atomic_max, py_atomic_min
        op = {"add": py_atomic_add, "min": py_atomic_min, "max": py_atomic_max}[mode]

        def tracked(arr, idx, val):
            if isinstance(arr, _Tracked):
                self.write(arr, idx, sys._getframe(1).f_lineno, mode)
                return op(arr.a, idx, val)
            return op(arr, idx, val)
        return tracked

    def fail(self, arr, pos, lineno, mode, prev):
        rk, rarr, rloc = prev
        what = "overwritten" if mode == "set" else "accumulated into"
        where = f" (`{rk}` read it" + (f" at {rloc.filename}:{rloc.line}" if rloc is not None else "") + ")"
        shown = ", ".join(str(int(i)) for i in pos)
        from .checks import HINT
        raise AutodiffError(f"`{arr.name}[{shown}]` is {what} after it was read{where}", self.loc(lineno), HINT,
                            self.kernel)


class _Tracked:
    """An array argument that reports element accesses to its launch."""

    __slots__ = ("a", "name", "run", "base", "strides")

    def __init__(self, a, name, run):
        self.a = a
        self.name = name
        self.run = run
        self.base = a.__array_interface__["data"][0]
        self.strides = a.strides

    @property
    def shape(self):
        return self.a.shape

    @property
    def ndim(self):
        return self.a.ndim

    @property
    def dtype(self):
        return self.a.dtype

    @property
    def size(self):
        return self.a.size

    def __len__(self):
        return len(self.a)

    @property
    def T(self):          # whole-array products (ds.matmul) read every element
        self.run.read(self, Ellipsis, sys._getframe(1).f_lineno)
        return self.a.T

    def addresses(self, idx):
        """(memory address, index) of each element ``idx`` selects."""
        t = idx if isinstance(idx, tuple) else (idx,)
        if all(isinstance(i, (int, np.integer)) for i in t) and len(t) == self.a.ndim:
            pos = tuple(int(i) % n for i, n in zip(t, self.a.shape))
            return [(self.base + sum(p * s for p, s in zip(pos, self.strides)), pos)]
        flat = np.arange(self.a.size).reshape(self.a.shape)[idx]
        out = []
        for f in np.atleast_1d(flat).ravel():
            pos = tuple(int(p) for p in np.unravel_index(int(f), self.a.shape))
            out.append((self.base + sum(p * s for p, s in zip(pos, self.strides)), pos))
        return out

    def __getitem__(self, idx):
        self.run.read(self, idx, sys._getframe(1).f_lineno)
        return self.a[idx]

    def __setitem__(self, idx, value):
        self.run.write(self, idx, sys._getframe(1).f_lineno)
        self.a[idx] = value

    def __array__(self, dtype=None, copy=None):
        self.run.read(self, Ellipsis, sys._getframe(1).f_lineno)
        return self.a if dtype is None else self.a.astype(dtype)

    def __iadd__(self, other):
        self.run.write(self, Ellipsis, sys._getframe(1).f_lineno, "add")
        self.a += np.asarray(other)
        return self
