"""Activation functions of ``difsci.nn``: the ``@ds.func``s of :mod:`difsci.kernels.activations`.

One implementation: the networks use the library's funcs (tanh and sigmoid
with one ``exp``, several times faster than libm's ``tanh`` inside kernels),
and their derivatives of any order come from difsci's transformations, never
from hand-written rules.
"""
from __future__ import annotations

from ..kernels.activations import (
    ACTIVATIONS,
    gelu,
    identity,
    key_of,
    relu,
    sigmoid,
    sin,
    softplus,
    tanh,
)

__all__ = ["ACTIVATIONS", "gelu", "get", "identity", "key_of", "relu", "sigmoid", "sin", "softplus", "tanh"]


def get(name):
    """An activation by name (``"tanh"``, …, None for the identity) or a ``@ds.func`` of one argument."""
    if getattr(name, "_difsci_func", False) or hasattr(name, "specialize"):
        return name
    if name is None:
        return identity
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {name!r}: choose one of "
                         f"{', '.join(k for k in ACTIVATIONS if not k.startswith('custom_'))} "
                         "or pass a @ds.func") from None
