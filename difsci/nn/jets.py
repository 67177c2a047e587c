"""Derivative streams ("jets") through dense layers.

A PINN needs u and some of its input derivatives (u_t, u_x, u_xx …) at every
point.  They are propagated forward through the network together, one stream
per derivative: a linear layer maps every stream with the same weights (the
bias only enters the value stream); an activation maps the streams by nested
forward mode of its ``@ds.func`` — ``ds.jvp(ds.jvp(act))`` for a second
derivative — so the derivative rules come from difsci's own transformation.
The weight gradient is then reverse mode of these kernels, through the Tape.
The layer kernel itself is the library's: :func:`difsci.kernels.dense_kernel`
with ``streams``.

A stream is named by the multiset of input indices it differentiates by:
``()`` is the value, ``(1,)`` d/dx1, ``(1, 1)`` d²/dx1², ``(0, 1)`` d²/dx0dx1.
"""
from __future__ import annotations

import itertools

from ..kernels.linalg import dense_kernel as _library_dense


def close_streams(needed) -> list:
    """All sub-multisets of the needed ones, value first, by order then index."""
    out = {()}
    for m in needed:
        m = tuple(sorted(m))
        for k in range(1, len(m) + 1):
            for sub in itertools.combinations(m, k):
                out.add(tuple(sorted(sub)))
    return sorted(out, key=lambda m: (len(m), m))


def dense_kernel(act, streams):
    """The library's dense-layer kernel over ``streams``: ``dense(x, W, b, z, y)`` for the value alone,
    ``dense(x, W, b, z, zs, y)`` with derivative streams (see difsci.kernels.dense_kernel)."""
    return _library_dense(act, streams)
