"""Elementwise activation functions as ``@ds.func`` of one number.

Each is differentiable to any order by difsci's own transformations.  They
are written for speed inside kernels: ``tanh`` and ``sigmoid`` use one
``exp`` (several times faster than libm's ``tanhf`` on the CPU), with the
argument clamped where the result has already rounded to +-1 (so no
``inf``/``nan`` reaches the derivative).  ``tanh`` has a jvp rule, tanh' = 1 - tanh^2,
so its nested derivatives (a PINN's derivative streams) and their reverse mode are
polynomials of the value.

``ACTIVATIONS`` maps the names ``identity tanh sin relu softplus sigmoid gelu``
to the funcs; :func:`activation` looks one up (or passes a func through);
:func:`key_of` gives the name of a func (registering a custom one), for
generated source.  ``difsci.nn`` uses these same funcs.
"""
from __future__ import annotations

import math

import difsci as ds

_SQRT1_2 = 1.0 / math.sqrt(2.0)


@ds.func
def identity(v):
    """v"""
    return v


@ds.func
def tanh(v):
    """tanh(v) = 1 - 2 / (exp(2v) + 1), |v| clamped to 20 (beyond it tanh is +-1 in float64)."""
    e = ds.exp(2.0 * ds.clamp(v, -20.0, 20.0))
    return 1.0 - 2.0 / (e + 1.0)


@tanh.defjvp
def _tanh_jvp(v, dv):
    """tanh' = 1 - tanh^2, from the value itself: nested jvps (a PINN's derivative streams) and their
    reverse mode then need one ``exp`` and a few products instead of differentiating the formula."""
    t = tanh(v)
    return (1.0 - t * t) * dv


@ds.func
def tanh_rational(v):
    """tanh(v) as a rational function of v (no ``exp``): float32 accuracy (within 3.5e-7, a few ulp),
    for float32 networks.

    x P(x^2) / Q(x^2) with P of degree 6 and Q of degree 3 in x^2, fitted to tanh on [0, 9] by
    difsci's own weighted least squares (Sanathanan-Koerner with Lawson reweighting towards the
    minimax fit; float64 error 6e-9).  The argument is clamped to +-9 (tanh(9) rounds to 1 in
    float32) and the result to [-1, 1].  Only multiplications, additions and one division, so loops
    over it vectorise (numba's ``exp`` does not: no SVML here).  It has the same jvp rule as
    ``tanh``: derivatives of any order are polynomials of the value."""
    x = ds.clamp(v, -9.0, 9.0)
    x2 = x * x
    p = x2 * -8.290300435061552e-14 + 5.192339995235716e-11
    p = x2 * p + -2.002893556912022e-08
    p = x2 * p + 1.1101696995374674e-05
    p = x2 * p + 0.0030986442867783222
    p = x2 * p + 0.13079155411516655
    p = x2 * p + 0.9999999690341368
    q = x2 * 0.0002538585272914525 + 0.024473723815293905
    q = x2 * q + 0.46412475694444766
    q = x2 * q + 1.0
    return ds.clamp(x * p / q, -1.0, 1.0)


@tanh_rational.defjvp
def _tanh_rational_jvp(v, dv):
    """tanh' = 1 - tanh^2, from the value (as for ``tanh``)."""
    t = tanh_rational(v)
    return (1.0 - t * t) * dv


def for_dtype(act, dtype):
    """The activation a network of ``dtype`` runs: ``tanh_rational`` for ``tanh`` in float32
    (vectorisable, float32-accurate), otherwise ``act`` itself."""
    import numpy as np
    return tanh_rational if act is tanh and np.dtype(dtype) == np.float32 else act


@ds.func
def sin(v):
    """sin(v) (SIREN-style networks)."""
    return ds.sin(v)


@ds.func
def relu(v):
    """max(v, 0), with derivative 0 at 0."""
    return ds.select(v > 0.0, v, 0.0)


@ds.func
def softplus(v):
    """log(1 + exp(v)), computed without overflow."""
    return ds.max(v, 0.0) + ds.log1p(ds.exp(-ds.abs(v)))


@ds.func
def sigmoid(v):
    """1 / (1 + exp(-v)), computed without overflow."""
    e = ds.exp(-ds.abs(v))
    return ds.select(v >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


@ds.func
def gelu(v):
    """The exact GELU, v * Phi(v) = 0.5 v (1 + erf(v / sqrt 2))."""
    return 0.5 * v * (1.0 + ds.erf(v * _SQRT1_2))


ACTIVATIONS = {"identity": identity, "linear": identity, "none": identity, "tanh": tanh, "sin": sin,
               "relu": relu, "softplus": softplus, "sigmoid": sigmoid, "gelu": gelu,
               "tanh_rational": tanh_rational}


def key_of(act) -> str:
    """A name under which generated code finds ``act`` as ``ACTIVATIONS[key]`` (custom funcs get one)."""
    for k, v in ACTIVATIONS.items():
        if v is act:
            return k
    k = f"custom_{getattr(act, '__name__', 'act')}_{id(act):x}"
    ACTIVATIONS[k] = act
    return k


def activation(act) -> ds.Func:
    """The activation func for a name (``"tanh"``…), ``None`` (identity) or a ``@ds.func`` itself."""
    if act is None:
        return identity
    if hasattr(act, "specialize"):      # a @ds.func or a transformed func (ds.grad(...), ...)
        return act
    try:
        return ACTIVATIONS[str(act).lower()]
    except KeyError:
        raise ValueError(f"unknown activation {act!r}: use one of {sorted(ACTIVATIONS)} or a @ds.func") from None
