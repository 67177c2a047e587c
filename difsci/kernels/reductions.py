"""Reductions: sums, means, dot products, norms, extrema — whole arrays and along an axis.

Kernels take 1-D inputs (``x: (n,)``) and write into 0-d arrays
(``out: ()``, created with ``ds.zeros(())``); the axis variants take a 3-D
view ``(a, n, b)`` and reduce its middle axis into ``(a, b)``, which covers
every axis of every array after a reshape.  The Python helpers at the end
(:func:`sum`, :func:`mean`, :func:`max`, …) do that reshaping, allocate the
result and launch; they are recorded on an active ``ds.Tape`` like any
launch, and the result carries gradients when the input does.

Accumulating kernels (``reduce_sum``, ``reduce_mean``, ``reduce_dot``,
``reduce_sqnorm``) *add* into ``out`` (so several terms can share one loss
array; zero it first).  The extrema kernels and the axis kernels *assign*.

``reduce_sum`` uses atomic adds (per-thread partials on the CPU): the order
of the additions, hence the last bits, may change from run to run.
``reduce_sum_deterministic`` adds fixed chunks in a fixed order instead.
The gradient of a maximum or minimum goes to the element the arg-extremum
picks (the first one at a tie).
"""
from __future__ import annotations

import builtins

import numpy as np

import difsci as ds


# ------------------------------------------------------------- whole arrays
@ds.kernel
def reduce_sum(x, out):
    """out += sum_i x[i].  x: (n,); out: ()."""
    for i in range(x.shape[0]):
        out[None] += x[i]


@ds.kernel
def reduce_mean(x, out):
    """out += sum_i x[i] / n.  x: (n,) with n > 0; out: ()."""
    inv = 1.0 / x.shape[0]
    for i in range(x.shape[0]):
        out[None] += x[i] * inv


@ds.kernel
def reduce_dot(a, b, out):
    """out += sum_i a[i] * b[i].  a, b: (n,); out: ()."""
    for i in range(a.shape[0]):
        out[None] += a[i] * b[i]


@ds.kernel
def reduce_sqnorm(x, out):
    """out += sum_i x[i]**2.  x: (n,); out: ()."""
    for i in range(x.shape[0]):
        out[None] += x[i] * x[i]


@ds.kernel
def reduce_sum_deterministic(x, partial, out):
    """out += sum_i x[i], in a fixed order: bitwise the same on every run.

    x: (n,); partial: (m,) scratch, m >= 1 (chunk c sums x[c*B : (c+1)*B],
    B = ceil(n / m), in index order; the m partials are then added in order);
    out: ().  Give ``partial`` requires_grad=True when x has it.
    """
    n = x.shape[0]
    m = partial.shape[0]
    chunk = (n + m - 1) // m
    for c in range(m):
        s = 0.0
        for i in range(c * chunk, ds.min(n, (c + 1) * chunk)):
            s = s + x[i]
        partial[c] = s
    for _ in range(1):
        t = 0.0
        for c in range(m):
            t = t + partial[c]
        out[None] += t


@ds.func
def _arg_extreme(x, lo: int, hi: int, sign: float) -> int:
    """Index in [lo, hi) of the first largest ``sign * x[i]`` (lo when empty)."""
    best = lo
    for i in range(lo + 1, hi):
        if sign * x[i] > sign * x[best]:
            best = i
    return best


@ds.kernel
def reduce_argmax(x, chunk_idx, out_idx, sign: float):
    """out_idx = first index of the largest ``sign * x[i]`` (sign 1: argmax, -1: argmin).

    x: (n,), n > 0; chunk_idx: (m,) int scratch, 1 <= m <= n (each chunk's
    own arg-extremum, found in parallel); out_idx: () int.
    """
    n = x.shape[0]
    m = chunk_idx.shape[0]
    chunk = (n + m - 1) // m
    for c in range(m):
        lo = ds.min(n - 1, c * chunk)
        chunk_idx[c] = _arg_extreme(x, lo, ds.max(lo + 1, ds.min(n, (c + 1) * chunk)), sign)
    for _ in range(1):
        best = chunk_idx[0]
        for c in range(1, m):
            k = chunk_idx[c]
            if sign * x[k] > sign * x[best]:   # chunks come in index order: ties keep the first
                best = k
        out_idx[None] = best


@ds.kernel
def take0(x, idx, out):
    """out = x[idx] (0-d index, 0-d out): the value picked by an arg-extremum.  x: (n,)."""
    out[None] = x[idx[None]]


# ------------------------------------------------------------- along an axis
@ds.kernel
def sum_axis(x, out):
    """out[a, b] = sum_k x[a, k, b].  x: (A, n, B); out: (A, B)."""
    for a, b in ds.ndrange(x.shape[0], x.shape[2]):
        s = 0.0
        for k in range(x.shape[1]):
            s = s + x[a, k, b]
        out[a, b] = s


@ds.kernel
def mean_axis(x, out):
    """out[a, b] = mean_k x[a, k, b].  x: (A, n, B), n > 0; out: (A, B)."""
    inv = 1.0 / x.shape[1]
    for a, b in ds.ndrange(x.shape[0], x.shape[2]):
        s = 0.0
        for k in range(x.shape[1]):
            s = s + x[a, k, b]
        out[a, b] = s * inv


@ds.kernel
def argmax_axis(x, out_idx, out, sign: float):
    """out_idx[a, b] = first k maximising sign * x[a, k, b]; out[a, b] = x[a, out_idx[a, b], b].

    x: (A, n, B), n > 0; out_idx: (A, B) ints; out: (A, B).  sign 1: max, -1: min.
    """
    for a, b in ds.ndrange(x.shape[0], x.shape[2]):
        best = 0
        for k in range(1, x.shape[1]):
            if sign * x[a, k, b] > sign * x[a, best, b]:
                best = k
        out_idx[a, b] = best
        out[a, b] = x[a, best, b]


# ---------------------------------------------------------- Python helpers
def _as_array(x):
    return x if isinstance(x, ds.Array) else ds.array(np.asarray(x))


def _reshaped(x: ds.Array, shape) -> ds.Array:
    """A view of ``x`` (and of its gradient) with a new shape; ``x`` must be contiguous."""
    ne = x.data.ndim - x.ndim
    full = tuple(shape) + x.data.shape[x.data.ndim - ne:] if ne else tuple(shape)
    data = x.data.reshape(full)
    if not np.shares_memory(data, x.data) and x.size > 0:
        raise ValueError("reductions need a contiguous array (reshaping this view would copy it)")
    g = None
    if x.grad is not None:
        g = ds.Array(x.grad.data.reshape(full), x.elem, device=x.device)
    return ds.Array(data, x.elem, x.requires_grad, g, x.device)


def _flat(x):
    x = _as_array(x)
    return _reshaped(x, (x.size,))


def _out(x: ds.Array, shape=()):
    return ds.zeros(shape, dtype=x.dtype, requires_grad=x.requires_grad)


def _axis_view(x: ds.Array, axis: int):
    axis = axis % x.ndim
    a = int(np.prod(x.shape[:axis]))
    b = int(np.prod(x.shape[axis + 1:]))
    return _reshaped(x, (a, x.shape[axis], b)), x.shape[:axis] + x.shape[axis + 1:]


def sum(x, axis: int | None = None, deterministic: bool = False) -> ds.Array:
    """Sum of all elements (a 0-d array) or along ``axis``; recorded on an active Tape."""
    x = _as_array(x)
    if axis is not None:
        v, shape = _axis_view(x, axis)
        out = _out(x, (v.shape[0], v.shape[2]))
        sum_axis(v, out)
        return _reshaped(out, shape)
    out = _out(x)
    f = _flat(x)
    if deterministic:
        m = builtins.max(1, builtins.min(256, f.shape[0] // 4096))
        partial = ds.zeros(m, dtype=x.dtype, requires_grad=x.requires_grad)
        reduce_sum_deterministic(f, partial, out)
    else:
        reduce_sum(f, out)
    return out


def mean(x, axis: int | None = None) -> ds.Array:
    """Mean of all elements (0-d) or along ``axis``."""
    x = _as_array(x)
    if axis is not None:
        v, shape = _axis_view(x, axis)
        out = _out(x, (v.shape[0], v.shape[2]))
        mean_axis(v, out)
        return _reshaped(out, shape)
    out = _out(x)
    reduce_mean(_flat(x), out)
    return out


def dot(a, b) -> ds.Array:
    """sum(a * b) over all elements, as a 0-d array."""
    a, b = _as_array(a), _as_array(b)
    out = ds.zeros((), dtype=a.dtype, requires_grad=a.requires_grad or b.requires_grad)
    reduce_dot(_flat(a), _flat(b), out)
    return out


def sqnorm(x) -> ds.Array:
    """sum(x**2) as a 0-d array."""
    x = _as_array(x)
    out = _out(x)
    reduce_sqnorm(_flat(x), out)
    return out


def _chunks(n: int) -> int:
    return builtins.max(1, builtins.min(n, 64, n // 2048 + 1))


def _extreme(x, axis, sign):
    x = _as_array(x)
    if axis is not None:
        v, shape = _axis_view(x, axis)
        idx = ds.zeros((v.shape[0], v.shape[2]), dtype=np.int64)
        out = _out(x, idx.shape)
        argmax_axis(v, idx, out, sign)
        return _reshaped(out, shape), _reshaped(idx, shape)
    f = _flat(x)
    if f.shape[0] == 0:
        raise ValueError("the extremum of an empty array is undefined")
    idx = ds.zeros((), dtype=np.int64)
    reduce_argmax(f, ds.zeros(_chunks(f.shape[0]), dtype=np.int64), idx, sign)
    out = _out(x)
    take0(f, idx, out)
    return out, idx


def max(x, axis: int | None = None) -> ds.Array:
    """Largest element (0-d) or largest along ``axis``; the gradient goes to the first maximum."""
    return _extreme(x, axis, 1.0)[0]


def min(x, axis: int | None = None) -> ds.Array:
    """Smallest element (0-d) or smallest along ``axis``."""
    return _extreme(x, axis, -1.0)[0]


def argmax(x, axis: int | None = None) -> ds.Array:
    """Index (into the flattened array, 0-d int64) of the first maximum, or along ``axis``."""
    return _extreme(x, axis, 1.0)[1]


def argmin(x, axis: int | None = None) -> ds.Array:
    """Index of the first minimum (flattened, 0-d int64), or along ``axis``."""
    return _extreme(x, axis, -1.0)[1]
