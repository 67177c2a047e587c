"""Transformations composed over funcs with custom rules (defjvp / defvjp) agree with the same func
without a rule, to any order and in every order. (jvp of jvp once gave zero second-order tangents:
the first transformation left the rule's statements inside the marked call, where the second one
did not differentiate them.)"""
from __future__ import annotations

import numpy as np
import pytest

import difsci as ds


@ds.func
def f_jvp_rule(x: float, y: float) -> float:
    a = x * 2.0
    return ds.sin(a) * y


@f_jvp_rule.defjvp
def _f_jvp(x: float, y: float, dx: float, dy: float) -> float:
    a = x * 2.0
    return 2.0 * ds.cos(a) * y * dx + ds.sin(a) * dy


@ds.func
def f_vjp_rule(x: float, y: float) -> float:
    a = x * 2.0
    return ds.sin(a) * y


@f_vjp_rule.defvjp
def _f_vjp(x: float, y: float, g: float):
    a = x * 2.0
    return 2.0 * ds.cos(a) * y * g, ds.sin(a) * g


@ds.func
def f_plain(x: float, y: float) -> float:
    a = x * 2.0
    return ds.sin(a) * y


@ds.func
def outer_jvp_rule(x: float, y: float) -> float:
    return f_jvp_rule(x * x, y + 1.0) * x


@ds.func
def outer_vjp_rule(x: float, y: float) -> float:
    return f_vjp_rule(x * x, y + 1.0) * x


@ds.func
def outer_plain(x: float, y: float) -> float:
    return f_plain(x * x, y + 1.0) * x


J, G = ds.jvp, ds.grad
COMPOSITIONS = {
    "jvp": (lambda F: J(F), (0.3, -0.2)),
    "jvp(jvp)": (lambda F: J(J(F)), (0.3, -0.2, 0.5, 0.1, 0.2, -0.7)),
    "jvp(jvp(jvp))": (lambda F: J(J(J(F))), (1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0)),
    "grad(grad)": (lambda F: G(G(F)), ()),
    "grad(grad, y)": (lambda F: G(G(F, argnums=1), argnums=0), ()),
    "grad(grad(grad))": (lambda F: G(G(G(F))), ()),
    "jvp(grad)": (lambda F: J(G(F)), (0.3, -0.2)),
    "grad(jvp)": (lambda F: G(_first_tangent(F)), ()),
    "hessian": (lambda F: ds.hessian(_as_vec(F)), None),
}


_cache: dict = {}


def _first_tangent(F):
    """x, y -> d/dx of F along (1, 0), as a func (so grad(jvp) composes)."""
    key = ("ft", F)
    if key not in _cache:
        jf = ds.jvp(F)

        @ds.func
        def first_tangent(x: float, y: float) -> float:
            v, t = jf(x, y, 1.0, 0.0)
            return t
        _cache[key] = first_tangent
    return _cache[key]


def _as_vec(F):
    key = ("vec", F)
    if key not in _cache:
        @ds.func
        def on_vec(p: ds.vec2) -> float:
            return F(p[0], p[1])
        _cache[key] = on_vec
    return _cache[key]


def _flat(v):
    return np.array(np.ravel(np.array(v, dtype=float)), dtype=float)


@pytest.mark.parametrize("pair", [("f_jvp_rule", "f_plain"), ("f_vjp_rule", "f_plain"),
                                  ("outer_jvp_rule", "outer_plain"), ("outer_vjp_rule", "outer_plain")])
@pytest.mark.parametrize("name", list(COMPOSITIONS))
def test_rule_and_plain_agree(name, pair, py):
    make, extra = COMPOSITIONS[name]
    F, P = (globals()[n] for n in pair)
    x, y = 0.7, -0.4
    if extra is None:
        got, want = make(F)(ds.vec2(x, y)), make(P)(ds.vec2(x, y))
    else:
        got, want = make(F)(x, y, *extra), make(P)(x, y, *extra)
    g, w = _flat(got), _flat(want)
    np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-13)
    assert np.abs(w).max() > 1e-3
