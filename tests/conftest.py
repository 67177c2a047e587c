"""Shared fixtures and helpers for the language tests.

``backend`` runs a test on the plain-Python oracle and on the numba CPU
backend; ``py`` runs it on the Python backend only (cheap: no numba compile).
numba cold-compiles cost about a second per kernel, so most language tests use
``py`` and a representative subset uses ``backend``.
"""
from __future__ import annotations

import numpy as np
import pytest

import difsci as ds

BACKENDS = ("python", "cpu")


def _use(name):
    ds.init(backend=name)


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each backend in turn; restores ``cpu`` afterwards."""
    _use(request.param)
    yield request.param
    _use("cpu")


@pytest.fixture
def py():
    """The plain-Python backend only; restores ``cpu`` afterwards."""
    _use("python")
    yield "python"
    _use("cpu")


@pytest.fixture
def cpu():
    """The numba CPU backend only."""
    _use("cpu")
    yield "cpu"
    _use("cpu")


def tol(dtype):
    """(rtol, atol) suited to results computed in ``dtype``."""
    if np.dtype(dtype) == np.float32:
        return 2e-5, 1e-5
    return 1e-12, 1e-12


def assert_close(got, want, dtype=np.float64, rtol=None, atol=None):
    """``got`` equals ``want`` to the rounding of ``dtype`` (exactly for ints)."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.dtype.kind in "iub" and want.dtype.kind in "iub":
        np.testing.assert_array_equal(got, want)
        return
    r, a = tol(dtype)
    np.testing.assert_allclose(got, want, rtol=r if rtol is None else rtol, atol=a if atol is None else atol)


def snapshot(*arrays):
    """Copies of the data of ``arrays`` (ds.Array or numpy), to check nothing was written."""
    return [np.array(np.asarray(a), copy=True) for a in arrays]


def unchanged(before, *arrays):
    """True when every array still holds the data of ``before``."""
    return all(np.array_equal(b, np.asarray(a), equal_nan=True) for b, a in zip(before, arrays))


def cuda_available() -> bool:
    """Whether the cuda backend can run here (a GPU, or NUMBA_ENABLE_CUDASIM=1)."""
    from difsci.config import check_cuda
    try:
        check_cuda()
    except ds.BackendError:
        return False
    return True
