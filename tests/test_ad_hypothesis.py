"""Random small kernels (expressions, branches, inner loops carrying locals,
while loops, break/continue, conditional expressions): Tape gradients
against central finite differences on the python and cpu backends, and the
cpu backend's values against the plain-Python oracle.

Generated kernels are written to real files (kernels are parsed from their
source) in a fixed directory, named by a hash of their text, so that the
examples hypothesis draws (derandomised) hit numba's cache on later runs.
"""
from __future__ import annotations

import hashlib
import importlib.util
import pathlib
import sys
import tempfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import difsci as ds  # noqa: E402

from gradcheck import tape_check, using  # noqa: E402

GEN_DIR = pathlib.Path(tempfile.gettempdir()) / "difsci_ad_hypothesis"
N, M = 4, 5          # len(x), len(w)

UNARY = ["ds.sin({})", "ds.cos({})", "ds.tanh({})", "ds.sqrt(1.0 + {0} * {0})", "ds.exp(0.5 * ds.tanh({}))",
         "ds.atan({})", "({} * 0.5)", "ds.abs({})", "ds.log(1.5 + ds.sin({}))"]
BINARY = ["({} + {})", "({} - {})", "({} * {})", "({} / (1.5 + ds.sin({})))", "ds.max({}, {})", "ds.min({}, {})",
          "ds.atan2({}, 1.0 + {} * {})", "ds.hypot({}, 0.3 + {})", "hf({}, {})", "ds.norm(ds.vec2({}, 0.5 + {}))",
          "ds.dot(ds.vec3({}, {}, 0.5), ds.normalize(ds.vec3({}, 1.0, {})))"]


@st.composite
def exprs(draw, names, depth=2):
    """A random expression over ``names`` (strings of kernel-language source)."""
    if depth == 0 or draw(st.integers(0, 4)) == 0:
        if draw(st.booleans()) or not names:
            return draw(st.sampled_from(["x[i]", f"w[i % {M}]", "w[0]", "x[(i + 1) % x.shape[0]]"]))
        return draw(st.sampled_from(names))
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.sampled_from(UNARY)).format(draw(exprs(names, depth - 1)))
    if kind == 4:   # a conditional expression
        c, a, b = (draw(exprs(names, depth - 1)) for _ in range(3))
        return f"({a} if {c} > 0.1 else {b})"
    tmpl = draw(st.sampled_from(BINARY))
    args = [draw(exprs(names, depth - 1)) for _ in range(tmpl.count("{}"))]
    return tmpl.format(*args)


@st.composite
def statements(draw, names, depth=0):
    """Lines (indent 0) of a random statement; may define a new local (added to ``names``)."""
    kind = draw(st.sampled_from(["assign", "assign", "reassign", "if", "for", "while"] if depth < 2 else
                                ["assign", "reassign"]))
    new = f"v{len(names)}"
    if kind == "assign" or (kind == "reassign" and not names):
        e = draw(exprs(names))
        names.append(new)
        return [f"{new} = {e}"]
    if kind == "reassign":
        v = draw(st.sampled_from(names))
        return [f"{v} = {draw(exprs(names))}"]
    if kind == "if":
        c = draw(exprs(names, 1))
        v = draw(st.sampled_from(names)) if names else None
        if v is None:
            names.append(new)
            v = new
            pre = [f"{v} = 0.0"]
        else:
            pre = []
        a, b = draw(exprs(names)), draw(exprs(names))
        lines = pre + [f"if {c} > 0.0:", f"    {v} = {a}"]
        if draw(st.booleans()):
            lines += [f"elif {draw(exprs(names, 1))} < -0.3:", f"    {v} = {v} * 0.5 + {b}"]
        if draw(st.booleans()):
            lines += ["else:", f"    {v} = {b} - {v}"]
        return lines
    if kind == "for":
        n = draw(st.sampled_from([3, 7, 41]))          # >= 31 trips: Taichi's adjoint breaks there
        if not names:
            names.append(new)
            pre = [f"{new} = x[i]"]
        else:
            pre = []
        v = draw(st.sampled_from(names))
        inner = names + ["w[j % 5]", "(0.1 * j)"]
        e = draw(exprs(inner))
        body = [f"    {v} = 0.6 * {v} + 0.4 * ds.tanh({e})"]
        jump = draw(st.sampled_from([None, "break", "continue"]))
        if jump:
            body.insert(draw(st.integers(0, 1)), f"    if {draw(exprs(inner, 1))} > 0.8:\n        {jump}")
        if draw(st.booleans()):
            u = draw(st.sampled_from(names))
            body.append(f"    {u} = {u} + 0.05 * ds.sin({v} + w[j % 5])")
        return pre + [f"for j in range({n}):"] + body
    # while: bounded by a counter, the condition also on data
    if not names:
        names.append(new)
        pre = [f"{new} = x[i]"]
    else:
        pre = []
    v = draw(st.sampled_from(names))
    e = draw(exprs(names, 1))
    return pre + ["k = 0", f"while k < 9 and {v} < 3.0:", f"    {v} = {v} + 0.3 + 0.2 * ds.sin({e})", "    k += 1"]


@st.composite
def kernel_sources(draw):
    names: list = []
    body = []
    for _ in range(draw(st.integers(2, 6))):
        body += draw(statements(names))
    final = draw(exprs(names, 3))
    # every local reaches the output, so every statement's adjoint matters
    mix = "".join(f" + {0.1 * (k + 2):.1f} * {v}" for k, v in enumerate(names))
    body.append(f"y[i] = {final}{mix}")
    if names and draw(st.booleans()):
        body.append(f"y[i] += {draw(st.sampled_from(names))} * 0.5")
    text = "\n".join("        " + ln.replace("\n", "\n        ") for ln in body)
    return KERNEL_TEMPLATE.format(body=text)


KERNEL_TEMPLATE = '''import difsci as ds


@ds.func
def hf(a, b):
    s = a
    for j in range(3):
        s = s * 0.7 + ds.sin(b * j)
        if s > 1.0:
            return s * 0.5
    return s


@ds.kernel
def rk(x: ds.f64[:], w: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
{body}
'''


@ds.kernel
def rloss(y: ds.f64[:], out: ds.f64[()]):
    for i in range(y.shape[0]):
        out[None] += ds.sin(y[i]) * (1.0 + 0.1 * i) + 0.5 * y[i] * y[i]


def load_generated(src: str):
    GEN_DIR.mkdir(exist_ok=True)
    name = "_adh_" + hashlib.sha1(src.encode()).hexdigest()[:16]
    if name in sys.modules:
        return sys.modules[name]
    path = GEN_DIR / f"{name}.py"
    if not path.exists() or path.read_text() != src:
        path.write_text(src)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _inputs(seed):
    rng = np.random.default_rng(seed)
    return {"x": rng.uniform(-1, 1, N), "w": rng.uniform(-1, 1, M)}


def _check(src, seed):
    mod = load_generated(src)

    def build(x, w):
        y = ds.zeros(N, requires_grad=True)
        mod.rk(x, w, y)
        out = ds.zeros((), requires_grad=True)
        rloss(y, out)
        return out
    try:
        return tape_check(build, _inputs(seed), rtol=1e-5, atol=1e-7, expect_nonzero=False), build
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- kernel ---\n{src}") from None


COMMON = dict(deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=40, **COMMON)
@given(src=kernel_sources(), seed=st.integers(0, 1000))
def test_random_kernels_python(src, seed):
    with using("python"):
        _check(src, seed)


@settings(max_examples=2, **COMMON)
@given(src=kernel_sources(), seed=st.integers(0, 1000))
def test_random_kernels_cpu_match_python(src, seed):
    with using("python"):
        g_py, build = _check(src, seed)
        loss_py = float(build(**{k: ds.array(v) for k, v in _inputs(seed).items()}).numpy())
    with using("cpu"):
        g_cpu, _ = _check(src, seed)
        loss_cpu = float(build(**{k: ds.array(v) for k, v in _inputs(seed).items()}).numpy())
    assert np.isclose(loss_cpu, loss_py, rtol=1e-12, atol=1e-12), src
    for k in g_py:
        np.testing.assert_allclose(g_cpu[k], g_py[k], rtol=1e-10, atol=1e-12, err_msg=src)
