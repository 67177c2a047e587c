"""Dense linear algebra: matvec, (batched) matmul, small batched solves, the dense layer.

Products *assign* their output.  ``matmul`` is one BLAS call (``ds.matmul``); the
loop products (``matmul_blocked``, ``batched_matmul``) run one parallel
iteration per output row and a block of four output columns, with four
scalar accumulators: each loaded ``x[n, k]`` feeds four multiply-adds and the
adjoint updates ``x.grad`` rows race-free (no atomics; the small weight
gradient gets per-thread partial copies).  Column blocks past the last
column read a clamped column and skip the store, so no inner loop carries
values the adjoint would have to save.

The dense layer ``y = act(x @ W + b)`` comes from :func:`dense_kernel`, a
factory building (and caching) one kernel per activation, given by name
(``"tanh"``, ``"sin"``, ``"relu"``, ``"softplus"``, ``"sigmoid"``, ``"gelu"``,
``"identity"``) or as any ``@ds.func`` of one number, and optionally per set of
derivative streams (``difsci.nn`` propagates a PINN's input derivatives
through it).  Its product is one BLAS call (``ds.matmul``, whose adjoint is two
more) and the activation a parallel loop: for the batch sizes of a PINN
(2,000-10,000 rows, 20 columns) that measured 2-2.5x faster forward and 3-5x
faster backward than the blocked loops above, one thread, float32 and float64.
"""
from __future__ import annotations

import numpy as np

import difsci as ds

from ..lang.loader import load_source
from .activations import activation, key_of


# --------------------------------------------------------------- matvec
@ds.kernel
def matvec(A, x, y):
    """y[i] = sum_j A[i, j] x[j].  A: (m, n); x: (n,); y: (m,)."""
    for i in range(A.shape[0]):
        s = 0.0
        for j in range(A.shape[1]):
            s = s + A[i, j] * x[j]
        y[i] = s


@ds.kernel
def batched_matvec(A, x, y):
    """y[b, i] = sum_j A[b, i, j] x[b, j].  A: (B, m, n); x: (B, n); y: (B, m)."""
    for b, i in ds.ndrange(A.shape[0], A.shape[1]):
        s = 0.0
        for j in range(A.shape[2]):
            s = s + A[b, i, j] * x[b, j]
        y[b, i] = s


# --------------------------------------------------------------- matmul
@ds.func
def _row_block(A, B, i: int, j0: int, n: int):
    """(A @ B)[i, j0 : j0 + 4] as four numbers; columns past n - 1 repeat column n - 1."""
    j1 = ds.min(j0 + 1, n - 1)
    j2 = ds.min(j0 + 2, n - 1)
    j3 = ds.min(j0 + 3, n - 1)
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for k in range(A.shape[1]):
        s0 = s0 + A[i, k] * B[k, j0]
        s1 = s1 + A[i, k] * B[k, j1]
        s2 = s2 + A[i, k] * B[k, j2]
        s3 = s3 + A[i, k] * B[k, j3]
    return s0, s1, s2, s3


@ds.kernel
def matmul(A, B, C):
    """C = A @ B: one BLAS call (``ds.matmul``; its adjoint is two more).  A: (m, k); B: (k, n); C: (m, n).

    Measured here (one process, two threads, quiet machine), forward / forward+backward against
    :func:`matmul_blocked`: 2000x20x20 f64 47/207 us vs 89/581 us; 256^3 f64 0.54/1.7 ms vs 2.6/89 ms;
    64^3 20/69 us vs 30/206 us. The blocked loops win only for tiny products (8^3: 2.7 vs 5.3 us)
    and inner sizes of 1-2.
    """
    for i, j in ds.ndrange(C.shape[0], C.shape[1]):
        C[i, j] = 0.0
    ds.matmul(A, B, C)


@ds.kernel
def matmul_blocked(A, B, C):
    """C = A @ B in loops: one parallel iteration per row and block of four columns (tiny products).

    A: (m, k); B: (k, n); C: (m, n)."""
    n = B.shape[1]
    for i, jb in ds.ndrange(A.shape[0], (n + 3) // 4):
        j0 = jb * 4
        s0, s1, s2, s3 = _row_block(A, B, i, j0, n)
        C[i, j0] = s0
        if j0 + 1 < n:
            C[i, j0 + 1] = s1
        if j0 + 2 < n:
            C[i, j0 + 2] = s2
        if j0 + 3 < n:
            C[i, j0 + 3] = s3


@ds.kernel
def batched_matmul(A, B, C):
    """C[b] = A[b] @ B[b].  A: (nb, m, k); B: (nb, k, n); C: (nb, m, n)."""
    n = B.shape[2]
    for b, i, jb in ds.ndrange(A.shape[0], A.shape[1], (n + 3) // 4):
        j0 = jb * 4
        j1 = ds.min(j0 + 1, n - 1)
        j2 = ds.min(j0 + 2, n - 1)
        j3 = ds.min(j0 + 3, n - 1)
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for k in range(A.shape[2]):
            s0 = s0 + A[b, i, k] * B[b, k, j0]
            s1 = s1 + A[b, i, k] * B[b, k, j1]
            s2 = s2 + A[b, i, k] * B[b, k, j2]
            s3 = s3 + A[b, i, k] * B[b, k, j3]
        C[b, i, j0] = s0
        if j0 + 1 < n:
            C[b, i, j1] = s1
        if j0 + 2 < n:
            C[b, i, j2] = s2
        if j0 + 3 < n:
            C[b, i, j3] = s3


# ------------------------------------------------------- small dense solves
@ds.func
def solve(A, b):
    """x with A x = b for a small matrix A (ds.mat2/mat3/mat4) and vector b."""
    return ds.inverse(A) @ b


@ds.func
def solve2(A: ds.mat2, b: ds.vec2) -> ds.vec2:
    """x with A x = b for 2x2 A, by Cramer's rule."""
    d = A[0, 0] * A[1, 1] - A[0, 1] * A[1, 0]
    return ds.vec2(A[1, 1] * b[0] - A[0, 1] * b[1], A[0, 0] * b[1] - A[1, 0] * b[0]) / d


@ds.func
def solve3(A: ds.mat3, b: ds.vec3) -> ds.vec3:
    """x with A x = b for 3x3 A, by Cramer's rule (x_i = det(A with column i = b) / det A)."""
    c0 = ds.vec3(A[0, 0], A[1, 0], A[2, 0])
    c1 = ds.vec3(A[0, 1], A[1, 1], A[2, 1])
    c2 = ds.vec3(A[0, 2], A[1, 2], A[2, 2])
    d = ds.dot(c0, ds.cross(c1, c2))
    return ds.vec3(ds.dot(b, ds.cross(c1, c2)), ds.dot(c0, ds.cross(b, c2)), ds.dot(c0, ds.cross(c1, b))) / d


@ds.kernel
def batched_solve(A, b, x):
    """x[i] = A[i]^-1 b[i].  A: (n,) of ds.mat2/mat3/mat4; b, x: (n,) of the matching vectors."""
    for i in range(A.shape[0]):
        x[i] = ds.inverse(A[i]) @ b[i]


def solve_batched(A, b) -> ds.Array:
    """Solve A[i] x[i] = b[i] for numpy/ds arrays A (n, d, d), b (n, d), d in 2..4; returns x (n,) of vecd."""
    An = np.asarray(A.numpy() if isinstance(A, ds.Array) else A)
    d = An.shape[-1]
    if An.ndim != 3 or An.shape[1] != d or d not in (2, 3, 4):
        raise ValueError(f"A must have shape (n, d, d) with d in 2..4, got {An.shape}")
    Am = A if isinstance(A, ds.Array) and A.ndim == 1 else ds.array(An, dtype=ds.mat(d, d, ds.f64))
    bm = b if isinstance(b, ds.Array) and b.ndim == 1 else ds.array(np.asarray(b), dtype=ds.vec(d, ds.f64))
    x = ds.zeros(Am.shape[0], dtype=bm.dtype, requires_grad=Am.requires_grad or bm.requires_grad)
    batched_solve(Am, bm, x)
    return x


# ------------------------------------------------------------ dense layer
_DENSE: dict = {}

_DENSE_TEMPLATE = '''"""The dense layer act(x @ W + b){what}, generated by difsci.kernels.linalg."""
import difsci as ds
from difsci.kernels.activations import ACTIVATIONS

act = ACTIVATIONS[{key!r}]
J0 = act
{jets}


@ds.kernel
def {name}({params}):
    """{doc}"""
    for r, o in ds.ndrange(z.shape[0], z.shape[1]):
        z[r, o] = 0.0
    ds.matmul(x, W, z)
    for n, o in ds.ndrange({loop}):
{body}
'''

_DOC_1 = '''y = act(x @ W + b).

    x: (N, n_in), W: (n_in, n_out), b: (n_out,), z: (N, n_out) scratch for the
    pre-activations x @ W (overwritten), y: (N, n_out).  The product is one
    BLAS call (ds.matmul).
    '''

_DOC_S = '''y[s] = stream s of act(x[s] @ W + b) for the derivative streams {streams!r}.

    x: (S*N, n_in) the input streams stacked by rows (S = {S}), W: (n_in, n_out),
    b: (n_out,) (it enters the value stream only), z: (S*N, n_out) scratch for
    the pre-activations x @ W (overwritten), zs: the same buffer as z seen as
    (S, N, n_out), y: (S, N, n_out).  The product is one BLAS call
    (ds.matmul); the activation's derivatives are nested ds.jvp of its func.
    (zs gives the loop the stream as an index of its own: an adjoint update
    z_bar[s * N + n] is not recognised as race-free, zs_bar[s, n] is.)
    '''


def _jet_calls(streams) -> list:
    """Source lines computing every stream of act(a) from the streams a0, a1, ... of its argument.

    One nested-jvp call per stream not yet covered, highest order first:
    ``J2(a0, a2, a2, a3)`` for alpha = (1, 1) returns the streams of all the
    sub-multisets of alpha at once, ``((v, d1), (d1, d11))``, so each
    derivative expression is generated (and differentiated in reverse) once.
    The leaf for the subset with bit j set for alpha[j] is ``t<s>_<bits>``.
    """
    lines, done = [], set()
    for s in sorted(range(len(streams)), key=lambda s: -len(streams[s])):
        alpha = streams[s]
        if s in done:
            continue
        k = len(alpha)
        if k == 0:
            lines.append("y0_ = act(a0)")
            done.add(0)
            continue

        def sub(bits, alpha=alpha, k=k):
            return streams.index(tuple(sorted(alpha[j] for j in range(k) if bits >> j & 1)))

        def pattern(level, bits, s=s):      # the nested tuple of jvp^k: outermost index is bit k-1
            if level < 0:
                return f"t{s}_{bits}"
            return f"({pattern(level - 1, bits)}, {pattern(level - 1, bits | 1 << level)})"
        args = ", ".join(f"a{sub(bits)}" for bits in range(2 ** k))
        lines.append(f"{pattern(k - 1, 0)[1:-1]} = J{k}({args})")
        for bits in range(2 ** k):
            if sub(bits) not in done:
                done.add(sub(bits))
                lines.append(f"y{sub(bits)}_ = t{s}_{bits}")
    return lines


def dense_kernel(act="tanh", streams=None) -> ds.Kernel:
    """The kernel ``dense(x, W, b, z, y)``: y = act(x @ W + b), for one activation (cached).

    x: (batch, n_in); W: (n_in, n_out); b: (n_out,); z: (batch, n_out), scratch
    that receives the pre-activations (any contents; the kernel zeroes it);
    y: (batch, n_out).  ``act`` is a name (see :mod:`difsci.kernels.activations`),
    None, or a ``@ds.func`` of one number.  The product ``x @ W`` is one BLAS
    call (``ds.matmul``); the activation runs in a parallel loop.

    ``streams`` (for networks with input derivatives, e.g. PINNs): a list of
    derivative streams, each a sorted tuple of input indices -- ``()`` the
    value, ``(1,)`` d/dx1, ``(1, 1)`` d2/dx1^2 -- closed under sub-multisets,
    value first.  With more than the value stream the kernel is
    ``dense(x, W, b, z, zs, y)``: x (S*N, n_in) and z (S*N, n_out) hold
    S = len(streams) blocks of N rows (stream s in rows s*N:(s+1)*N), zs is z's
    buffer seen as (S, N, n_out), y is (S, N, n_out); the bias enters the value
    stream only, and stream s of y is that derivative of act(z + b) by the
    chain rule, computed by nested ``ds.jvp`` of ``act``.
    """
    f = activation(act)
    streams = [()] if streams is None else [tuple(m) for m in streams]
    if not streams or streams[0] != ():
        raise ValueError(f"streams must start with the value stream (), got {streams}")
    cache_key = (id(f), tuple(streams))
    k = _DENSE.get(cache_key)
    if k is None:
        k = _DENSE[cache_key] = (_make_dense(f, streams), f)    # keep ``f`` alive: the key holds its id
    return k[0]


def _make_dense(act, streams):
    key = key_of(act)
    S = len(streams)
    ind = " " * 8
    if S == 1:
        body = [f"{ind}y[n, o] = act(z[n, o] + b[o])"]
        params, loop, doc, what = "x, W, b, z, y", "y.shape[0], y.shape[1]", _DOC_1, ""
    else:
        body = [f"{ind}a0 = zs[0, n, o] + b[o]"] + [f"{ind}a{s} = zs[{s}, n, o]" for s in range(1, S)]
        body += [ind + line for line in _jet_calls(streams)]
        body += [f"{ind}y[{s}, n, o] = y{s}_" for s in range(S)]
        params, loop = "x, W, b, z, zs, y", "y.shape[1], y.shape[2]"
        doc, what = _DOC_S.format(streams=streams, S=S), f" over the derivative streams {streams!r}"
    order = max(len(a) for a in streams)
    jets = "\n".join(f"J{k} = ds.jvp(J{k - 1})" for k in range(1, order + 1))
    name = f"dense_{getattr(act, '__name__', 'act')}" + ("" if S == 1 else f"_jet{S}")
    src = _DENSE_TEMPLATE.format(key=key, name=name, params=params, doc=doc.rstrip() + "\n    ", loop=loop,
                                 body="\n".join(body), jets=jets, what=what)
    return getattr(load_source(src, key="kernels.dense"), name)


# ------------------------------------------------- dense layer, stream-major, points last
_DENSE_T: dict = {}

_DENSE_T_TEMPLATE = '''"""The dense layer act([W; b].T @ h) over derivative streams {streams!r}, points last,
generated by difsci.kernels.linalg."""
import difsci as ds
from difsci.kernels.activations import ACTIVATIONS

act = ACTIVATIONS[{key!r}]
J0 = act
{jets}


@ds.kernel
def {name}({params}):
    """{doc}"""
    for s, j in ds.ndrange(zf.shape[0], zf.shape[1]):
        zf[s, j] = 0.0
{products}
    for j in range(zf.shape[1]):
{body}
    for n in range(yf.shape[1] - zf.shape[1]):
{ones}
{cond}'''

_COND_T = '''    for o, m in ds.ndrange(zc.shape[0], zc.shape[1]):
        zc[o, m] = 0.0
    ds.matmul(Wt, xc, zc)
    for o, m in ds.ndrange(zc.shape[0], zc.shape[1]):
        yc[o, m] = act(zc[o, m])
    for m in range(zc.shape[1]):
        yc[zc.shape[0], m] = 1.0
'''

_DOC_T = '''Streams {streams!r} of act(h @ W + b) for N points, stored stream-major with the points last.

    Stream s of the layer input is x{{s}}: (n_in + 1, N), row i input i of the N
    points, row n_in the bias row (1 in the value stream x0, 0 in the others).
    Wt: (n_out, n_in + 1), the transpose of [W; b] -- in the flat parameter
    layout W (n_in, n_out) followed by b is that (n_in + 1, n_out) matrix, so Wt
    is a transposed view of the parameters and the bias enters through the
    product.  z{{s}}: (n_out, N) scratch for Wt @ x{{s}} (overwritten), zf the
    same buffer as (S, n_out*N) (S = {S}).  yf: (S, (n_out + 1)*N), stream s of
    the output as a flat (n_out + 1, N) block: the streams of act in rows
    0..n_out-1 and the bias row for the next layer in row n_out.  One BLAS call
    (ds.matmul) per stream; the activation's derivatives are nested ds.jvp of its
    func, in one loop over the (unit, point) pairs of every stream, whose
    streams are disjoint blocks, so the loop vectorises.{cond_doc}
    '''

_COND_DOC = '''
    Value-only points in the same launch: xc (n_in + 1, M) (bias row all ones),
    zc (n_out, M) scratch, yc (n_out + 1, M).'''


def dense_streams_kernel(act="tanh", streams=((),), cond=False) -> ds.Kernel:
    """The dense layer over derivative streams, points last (cached per activation, streams, ``cond``).

    ``dense(Wt, x0, .., x{S-1}, z0, .., z{S-1}, zf, yf)``, with ``cond=True``
    ``dense(Wt, x0, .., z0, .., zf, yf, xc, zc, yc)``: the streams of
    act(x @ W + b) as in :func:`dense_kernel`, but each stream stored as
    (units, points) with an extra bias row, so that one product per stream,
    ``[W; b].T @ x_s`` (Wt a transposed view of the flat parameters), gives its
    pre-activations and the activation loop runs over contiguous blocks.  With
    ``cond`` a second set of M value-only points (a PINN's initial and boundary
    points) goes through the same layer in the same launch.  ``difsci.nn``
    propagates a PINN's streams through a stack of these.
    """
    f = activation(act)
    streams = [tuple(m) for m in streams]
    if not streams or streams[0] != ():
        raise ValueError(f"streams must start with the value stream (), got {streams}")
    cache_key = (id(f), tuple(streams), bool(cond))
    k = _DENSE_T.get(cache_key)
    if k is None:
        k = _DENSE_T[cache_key] = (_make_dense_t(f, streams, bool(cond)), f)
    return k[0]


def _make_dense_t(act, streams, cond):
    key = key_of(act)
    S = len(streams)
    ind = " " * 8
    body = [f"{ind}a{s} = zf[{s}, j]" for s in range(S)]
    body += [ind + line for line in _jet_calls(streams)]
    body += [f"{ind}yf[{s}, j] = y{s}_" for s in range(S)]
    ones = [f"{ind}yf[{s}, zf.shape[1] + n] = {1.0 if s == 0 else 0.0}" for s in range(S)]
    products = [f"    ds.matmul(Wt, x{s}, z{s})" for s in range(S)]
    order = max(len(a) for a in streams)
    jets = "\n".join(f"J{k} = ds.jvp(J{k - 1})" for k in range(1, order + 1))
    name = f"dense_t_{getattr(act, '__name__', 'act')}_jet{S}" + ("_cond" if cond else "")
    params = ", ".join(["Wt"] + [f"x{s}" for s in range(S)] + [f"z{s}" for s in range(S)] + ["zf", "yf"])
    params += ", xc, zc, yc" if cond else ""
    doc = _DOC_T.format(streams=streams, S=S, cond_doc=_COND_DOC if cond else "")
    src = _DENSE_T_TEMPLATE.format(key=key, name=name, params=params, doc=doc.rstrip() + "\n    ",
                                   body="\n".join(body), ones="\n".join(ones), jets=jets, streams=streams,
                                   products="\n".join(products), cond=_COND_T if cond else "")
    return getattr(load_source(src, key="kernels.dense"), name)


def dense(x, W, b, act="tanh") -> ds.Array:
    """y = act(x @ W + b) as a new array (recorded on an active Tape); x: (batch, n_in) -> y: (batch, n_out)."""
    x = x if isinstance(x, ds.Array) else ds.array(np.asarray(x))
    rg = any(isinstance(a, ds.Array) and a.requires_grad for a in (x, W, b))
    z = ds.zeros((x.shape[0], W.shape[1]), dtype=x.dtype, requires_grad=rg)
    y = ds.zeros((x.shape[0], W.shape[1]), dtype=x.dtype, requires_grad=rg)
    dense_kernel(act)(x, W, b, z, y)
    return y


__all__ = [
    "batched_matmul",
    "batched_matvec",
    "batched_solve",
    "dense",
    "dense_kernel",
    "dense_streams_kernel",
    "matmul",
    "matmul_blocked",
    "matvec",
    "solve",
    "solve2",
    "solve3",
    "solve_batched",
]
