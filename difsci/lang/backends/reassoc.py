"""``radd``: the one addition the compiler may reassociate.

A sum over a loop (``loss[None] += v * v``) is a chain of dependent adds;
LLVM may only split it into vector lanes when the add is marked
reassociable.  numba sets fast-math flags per function, so ``radd`` is its
own tiny function compiled with ``fastmath={'reassoc'}``: LLVM inlines it
and keeps the flag on that one instruction, and nothing else in the kernel
is reassociated (measured: a float32 saxpy + sum-of-squares adjoint, 10M
points, one thread, 18.8 -> 9.3 ms).  The sum's rounding then depends on the
vector width, like any parallel sum.
"""
from __future__ import annotations


def radd_py(a, b):
    """The plain-Python backend's ``radd``: an ordinary add."""
    return a + b


def _numba_radd():
    from numba import njit
    return njit(fastmath={"reassoc"}, error_model="numpy", cache=True)(radd_py)


def __getattr__(name):
    if name == "radd":
        global radd
        radd = _numba_radd()
        return radd
    raise AttributeError(name)
