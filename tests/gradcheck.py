"""Gradient checking helpers for the autodiff suite.

* :func:`tape_check` — reverse mode of kernels through ``ds.Tape`` against
  float64 central finite differences along random directions
  (``<grad, v>`` vs ``(L(x + eps v) - L(x - eps v)) / 2 eps``).
* :func:`func_grad_check` — ``ds.grad`` of a func against finite differences.
* :func:`dot_product_check` — ``<u, J v>`` (from ``ds.jvp``) equals
  ``<J^T u, v>`` (from ``ds.grad`` of ``u . f``).
* :func:`taylor_rates` — the Taylor remainder ``|L(x + h v) - L(x) - h <g, v>|``
  falls like ``h**2`` (rate 2) when the gradient ``g`` is right, like ``h``
  when it is wrong.

Fixtures: ``py_backend`` (plain-Python backend) and ``backend_all``
(parametrised over ``python`` and ``cpu``).  Import them into a test module
to use them.
"""
from __future__ import annotations

import contextlib
import importlib.util
import sys
import textwrap

import numpy as np
import pytest

import difsci as ds
from difsci.config import config

BACKENDS = ("python", "cpu")


# ------------------------------------------------------------------ backends
@contextlib.contextmanager
def using(backend: str):
    """Run the block on ``backend``, restoring the previous one afterwards."""
    old = config.backend
    ds.init(backend=backend)
    try:
        yield backend
    finally:
        config.backend = old


@pytest.fixture
def py_backend():
    with using("python") as b:
        yield b


@pytest.fixture(params=BACKENDS)
def backend_all(request):
    with using(request.param) as b:
        yield b


# ------------------------------------------------------------------- kernels
_mod_count = [0]


def load_kernels(tmp_path, source: str, name: str | None = None):
    """Write ``source`` to a real file under ``tmp_path`` and import it (kernels need real files)."""
    _mod_count[0] += 1
    name = name or f"_ad_generated_{_mod_count[0]}"
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------- tape checks
def _scalar(a) -> float:
    d = np.asarray(a.numpy() if isinstance(a, ds.Array) else a, dtype=np.float64)
    assert d.size == 1, f"the loss must have one element, it has shape {d.shape}"
    return float(d.reshape(()))


def _make(inputs: dict, dtypes: dict, grad: bool) -> dict:
    """ds.Arrays from numpy ``inputs``; ``dtypes`` may give an element type (``ds.vec2``) per name."""
    return {k: ds.array(v, dtype=dtypes.get(k), requires_grad=grad) for k, v in inputs.items()}


def tape_grads(build, inputs: dict, dtypes: dict | None = None):
    """(loss, {name: gradient}) from one recorded run of ``build(**arrays)`` and ``backward``."""
    arrs = _make(inputs, dtypes or {}, True)
    with ds.Tape() as tape:
        loss = build(**arrs)
    tape.backward(loss)
    return _scalar(loss), {k: a.grad.numpy().astype(np.float64).copy() for k, a in arrs.items()}


def loss_at(build, inputs: dict, dtypes: dict | None = None) -> float:
    """The loss at ``inputs`` (no tape)."""
    return _scalar(build(**_make(inputs, dtypes or {}, True)))


def _perturbed(inputs, dirs, h):
    return {k: np.asarray(v, dtype=np.float64) + h * dirs[k] if k in dirs else v for k, v in inputs.items()}


def fd_directional(build, inputs, dirs, eps, dtypes=None) -> float:
    """Central difference of the loss along ``dirs`` (a dict of arrays like ``inputs``)."""
    lp = loss_at(build, _cast_like(_perturbed(inputs, dirs, eps), inputs), dtypes)
    lm = loss_at(build, _cast_like(_perturbed(inputs, dirs, -eps), inputs), dtypes)
    return (lp - lm) / (2 * eps)


def _cast_like(new, old):
    return {k: np.asarray(v).astype(np.asarray(old[k]).dtype) for k, v in new.items()}


def tape_check(build, inputs: dict, *, dtypes: dict | None = None, wrt=None, ndirs: int = 2, eps: float = 1e-6,
               rtol: float = 1e-6, atol: float = 1e-9, seed: int = 0, expect_nonzero: bool = True):
    """Check the Tape gradient of ``build`` against central differences along random directions.

    ``build(**arrays)`` launches kernels on ds.Arrays made from ``inputs``
    (all with ``requires_grad=True``; intermediates are made inside ``build``)
    and returns the loss array.  Each input in ``wrt`` (default: every
    floating input) is checked along ``ndirs`` random directions of its own,
    and all of them together along one more.  Returns the gradients.
    """
    rng = np.random.default_rng(seed)
    loss, grads = tape_grads(build, inputs, dtypes)
    assert np.isfinite(loss), "the loss is not finite"
    wrt = [k for k, v in inputs.items() if np.asarray(v).dtype.kind == "f"] if wrt is None else wrt
    cases = [{k: rng.standard_normal(np.shape(inputs[k]))} for k in wrt for _ in range(ndirs)]
    cases.append({k: rng.standard_normal(np.shape(inputs[k])) for k in wrt})
    for dirs in cases:
        fd = fd_directional(build, inputs, dirs, eps, dtypes)
        ad = sum(float(np.sum(grads[k] * d)) for k, d in dirs.items())
        scale = max(abs(fd), abs(ad), 1.0)
        assert abs(ad - fd) <= atol + rtol * scale, (
            f"gradient along a random direction of {sorted(dirs)}: autodiff {ad!r}, finite differences {fd!r}")
    if expect_nonzero:
        assert any(np.any(grads[k] != 0) for k in wrt), "every gradient is zero: the check proves nothing"
    return grads


def fd_full(build, inputs: dict, name: str, eps: float = 1e-6, dtypes=None) -> np.ndarray:
    """The whole gradient of the loss w.r.t. ``inputs[name]`` by central differences, element by element."""
    x = np.asarray(inputs[name], dtype=np.float64)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[idx] = 1.0
        g[idx] = fd_directional(build, inputs, {name: d}, eps, dtypes)
    return g


# ---------------------------------------------------------------- funcs
def _flat(v) -> np.ndarray:
    return np.atleast_1d(np.asarray(v, dtype=np.float64)).ravel()


def _shift(args, i, d, h):
    out = list(args)
    a = args[i]
    if np.ndim(a) == 0:
        out[i] = float(a) + h * float(np.asarray(d).reshape(()))
    else:
        out[i] = np.asarray(a, dtype=np.float64) + h * np.asarray(d).reshape(np.shape(a))
    return out


def fd_func_grad(f, args, argnum=0, eps=1e-6):
    """Central differences of a scalar func w.r.t. one argument (a number or a numpy vector/matrix)."""
    a = args[argnum]
    shape = np.shape(a)
    g = np.zeros(shape if shape else ())
    for idx in np.ndindex(shape):
        d = np.zeros(shape)
        d[idx] = 1.0
        fp = f(*_shift(args, argnum, d, eps))
        fm = f(*_shift(args, argnum, d, -eps))
        g[idx] = (float(fp) - float(fm)) / (2 * eps)
    return g


def func_grad_check(f, args, argnum=0, *, rtol=1e-6, atol=1e-8, eps=1e-6, g=None):
    """``ds.grad(f, argnum)`` (or a given func ``g`` computing it) against central differences of ``f``."""
    g = ds.grad(f, argnum) if g is None else g
    ad = np.asarray(g(*args), dtype=np.float64)
    fd = fd_func_grad(f, args, argnum, eps)
    np.testing.assert_allclose(ad.reshape(fd.shape), fd, rtol=rtol, atol=atol)
    return ad


def dot_product_check(f, args, *, seed=0, rtol=1e-10):
    """``<u, J v> == <J^T u, v>`` for a func ``f`` of float/vector arguments, ``u``/``v`` random.

    ``J v`` comes from ``ds.jvp(f)``; ``J^T u`` from ``ds.grad`` of the func
    ``dot(u, f(...))``, built here as difsci funcs over the same ``f``.
    """
    rng = np.random.default_rng(seed)
    tangents = [rng.standard_normal(np.shape(a)) if np.ndim(a) else float(rng.standard_normal()) for a in args]
    val, tan = ds.jvp(f)(*args, *tangents)
    u = rng.standard_normal(np.shape(val)) if np.ndim(val) else float(rng.standard_normal())
    lhs = float(np.sum(np.asarray(u) * np.asarray(tan)))
    rhs = 0.0
    for i in range(len(args)):
        jtu = vjp(f, args, u, i)
        rhs += float(np.sum(np.asarray(jtu) * np.asarray(tangents[i])))
    assert abs(lhs - rhs) <= rtol * max(1.0, abs(lhs), abs(rhs)), f"<u, Jv> = {lhs!r} but <J^T u, v> = {rhs!r}"
    return lhs


_VJP_CACHE: dict = {}


def vjp(f, args, u, argnum):
    """``J^T u`` w.r.t. argument ``argnum`` via ``ds.grad`` of ``lambda *a, u: dot(u, f(*a))``."""
    n = len(args)
    key = (id(f), n, np.ndim(u))
    g = _VJP_CACHE.get(key)
    if g is None:
        names = ", ".join(f"a{i}" for i in range(n))
        body = "ds.dot(u, f(" + names + "))" if np.ndim(u) else "u * f(" + names + ")"
        ns = {"ds": ds, "f": f}
        src = f"def _udotf({names}, u):\n    return {body}\n"
        g = _VJP_CACHE[key] = _func_from_source(src, "_udotf", ns)
    return ds.grad(g, argnum)(*args, u)


_FUNC_FILES: list = []


def _func_from_source(src: str, name: str, ns: dict):
    """A @ds.func from source text (written to a real file, since funcs are parsed with inspect)."""
    import atexit
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="difsci_gc_")
    atexit.register(shutil.rmtree, d, True)         # leave nothing behind in /tmp
    modname = f"_gc_{name}_{len(_FUNC_FILES)}"
    path = f"{d}/{modname}.py"
    with open(path, "w") as fh:
        fh.write("import difsci as ds\n\n@ds.func\n" + src)
    spec = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(spec)
    mod.__dict__.update(ns)
    sys.modules[modname] = mod
    spec.loader.exec_module(mod)
    _FUNC_FILES.append(path)
    return getattr(mod, name)


# ---------------------------------------------------------------- Taylor
def taylor_rates(loss_fn, x, grad, v, h0=1e-2, steps=4) -> np.ndarray:
    """Convergence rates of ``|L(x + h v) - L(x) - h <g, v>|`` as ``h`` halves (2 for a right gradient)."""
    l0 = loss_fn(x)
    slope = float(np.sum(grad * v))
    errs = []
    h = h0
    for _ in range(steps):
        errs.append(abs(loss_fn(x + h * v) - l0 - h * slope))
        h /= 2
    errs = np.asarray(errs)
    return np.log2(errs[:-1] / errs[1:])
