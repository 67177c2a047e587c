"""Stateless counter-based random numbers: ``randu(k0, k1, k2, k3)`` hashes
four integer keys to a uniform in [0, 1) (splitmix64 rounds); ``randn`` gives
a standard normal by Box-Muller from two such uniforms.  The Python and numba
versions produce the same bits, so every backend — and every adjoint replay —
draws the same numbers.
"""
from __future__ import annotations

import math

M64 = (1 << 64) - 1
GOLD = 0x9E3779B97F4A7C15


def _mix_py(z):
    z = (z + GOLD) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def randu_py(k0, k1, k2, k3):
    h = 0
    for k in (k0, k1, k2, k3):
        h = _mix_py(h ^ (int(k) & M64))
    return (h >> 11) * (1.0 / 9007199254740992.0)


def randn_py(k0, k1, k2, k3):
    u1 = randu_py(k0, k1, k2, k3 ^ 0x5BD1E995)
    u2 = randu_py(k0, k1, k2, k3 ^ 0x1B873593)
    return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)


def make_numba():
    import numpy as np
    from numba import njit, uint64

    @njit(cache=True, inline="never")
    def _mix(z):
        z = z + uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> uint64(27))) * uint64(0x94D049BB133111EB)
        return z ^ (z >> uint64(31))

    @njit(cache=True)
    def randu(k0, k1, k2, k3):
        h = uint64(0)
        h = _mix(h ^ uint64(np.int64(k0)))
        h = _mix(h ^ uint64(np.int64(k1)))
        h = _mix(h ^ uint64(np.int64(k2)))
        h = _mix(h ^ uint64(np.int64(k3)))
        return np.float64(h >> uint64(11)) * (1.0 / 9007199254740992.0)

    @njit(cache=True)
    def randn(k0, k1, k2, k3):
        u1 = randu(k0, k1, k2, np.int64(k3) ^ np.int64(0x5BD1E995))
        u2 = randu(k0, k1, k2, np.int64(k3) ^ np.int64(0x1B873593))
        return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)

    return randu, randn
