"""Activation functions as ``@ds.func``s: their derivatives (of any order) come
from difsci's transformations, never from hand-written rules here."""
from __future__ import annotations

import math

import difsci as ds


@ds.func
def tanh(z):
    return ds.tanh(z)


@ds.func
def sin(z):
    return ds.sin(z)


@ds.func
def relu(z):
    return ds.select(z > 0.0, z, 0.0 * z)


@ds.func
def softplus(z):
    # log(1 + e^z) without overflow for large z
    return ds.max(z, 0.0 * z) + ds.log1p(ds.exp(-ds.abs(z)))


@ds.func
def sigmoid(z):
    return 1.0 / (1.0 + ds.exp(-z))


@ds.func
def gelu(z):
    return 0.5 * z * (1.0 + ds.erf(z * (1.0 / math.sqrt(2.0))))


@ds.func
def identity(z):
    return z


ACTIVATIONS = {"tanh": tanh, "sin": sin, "relu": relu, "softplus": softplus, "sigmoid": sigmoid,
               "gelu": gelu, "identity": identity, "linear": identity, None: identity}


_CUSTOM: dict = {}


def key_of(act) -> str:
    """A name under which generated code finds ``act`` (``ACTIVATIONS[key]``)."""
    for k, v in ACTIVATIONS.items():
        if v is act and isinstance(k, str):
            return k
    k = f"custom_{getattr(act, '__name__', 'act')}_{id(act):x}"
    ACTIVATIONS[k] = act
    return k


def get(name):
    """An activation by name (or a ``@ds.func`` of one argument, used as it is)."""
    if getattr(name, "_difsci_func", False):
        return name
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}: choose one of "
                         f"{', '.join(k for k in ACTIVATIONS if k)} or pass a @ds.func") from None
