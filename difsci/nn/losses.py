"""Losses as difsci kernels (recorded on the Tape like any launch)."""
from __future__ import annotations

import numpy as np

import difsci as ds

from ..array import Array, zeros


@ds.kernel
def _sq_diff_sum(a, b, scale, out):
    """out[None] += scale * sum((a - b)**2) over all elements; a, b: (N, M)."""
    for n, m in ds.ndrange(a.shape[0], a.shape[1]):
        d = a[n, m] - b[n, m]
        out[None] += scale * d * d


def mse(a, b) -> Array:
    """The mean of squared differences as a 0-d ds.Array (gradients flow to a and b)."""
    da = a.data if isinstance(a, Array) else np.asarray(a)
    db = b.data if isinstance(b, Array) else np.asarray(b)
    if da.shape != db.shape:
        raise ValueError(f"mse: shapes differ: {da.shape} and {db.shape}")
    dt = np.result_type(da.dtype, db.dtype)
    out = zeros((), dtype=dt, requires_grad=True)
    a2 = _as2d(a)
    b2 = _as2d(b)
    _sq_diff_sum(a2, b2, 1.0 / max(da.size, 1), out)
    return out


def _as2d(a):
    if isinstance(a, Array):
        d = a.data
        shape = (d.shape[0], -1) if d.ndim >= 1 else (1, 1)
        g = Array(a.grad.data.reshape(shape), a.elem) if a.grad is not None else None
        return Array(d.reshape(shape), a.elem, a.requires_grad, g)
    d = np.asarray(a)
    return d.reshape((d.shape[0], -1) if d.ndim >= 1 else (1, 1))
