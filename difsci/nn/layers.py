"""``Linear`` and ``MLP``: parameters in one flat array, layers as difsci kernels.

Flat layout (API.md §7): per layer, W of shape (in, out) row-major, then b (out,).
"""
from __future__ import annotations

import numpy as np

from ..array import Array, array
from ..lang import types as T
from . import activations, jets


def _view(flat: Array, start: int, shape) -> Array:
    n = int(np.prod(shape))
    g = Array(flat.grad.data[start:start + n].reshape(shape), flat.elem) if flat.grad is not None else None
    return Array(flat.data[start:start + n].reshape(shape), flat.elem, flat.requires_grad, g)


def _flat2(a: Array) -> Array:
    """(S, N, k) -> the same buffer (and gradient buffer) as (S*N, k)."""
    d = a.data
    shape = (d.shape[0] * d.shape[1], d.shape[2])
    g = Array(a.grad.data.reshape(shape), a.elem) if a.grad is not None else None
    return Array(d.reshape(shape), a.elem, a.requires_grad, g)


class MLP:
    """A multilayer perceptron ``sizes[0] -> ... -> sizes[-1]``.

    ``net(x)``: x (N, in) -> (N, out), recorded on an active Tape like any launch.
    ``net.jet(x, streams)``: value and input-derivative streams, (S, N, out).
    ``net.func``: a ``@ds.func (params, x) -> y`` usable inside kernels.
    """

    def __init__(self, sizes, activation="tanh", dtype=np.float64, seed=0, init="xavier",
                 output_activation=None):
        if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
            raise ValueError(f"an MLP needs at least two positive layer sizes, got {sizes}")
        self.sizes = [int(s) for s in sizes]
        self.activation = activation
        self.output_activation = output_activation
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"MLP parameters are float32 or float64, not {self.dtype}")
        self.acts = [activations.get(activation)] * (len(sizes) - 2) + [activations.get(output_activation)]
        self.offsets = []
        off = 0
        for a, b in zip(self.sizes[:-1], self.sizes[1:]):
            self.offsets.append((off, off + a * b))
            off += a * b + b
        self.n_params = off
        self._flat = array(self._init_values(seed, init), dtype=self.dtype, requires_grad=True)
        self._func = None

    def _init_values(self, seed, init):
        rng = np.random.default_rng(seed)
        out = np.zeros(self.n_params)
        for (w, b), fan_in, fan_out in zip(self.offsets, self.sizes[:-1], self.sizes[1:]):
            if init == "xavier":
                std = np.sqrt(2.0 / (fan_in + fan_out))
            elif init == "he":
                std = np.sqrt(2.0 / fan_in)
            else:
                raise ValueError(f"unknown init {init!r}: 'xavier' or 'he'")
            out[w:b] = rng.normal(0.0, std, size=fan_in * fan_out)
        return out

    # ------------------------------------------------------------ parameters
    def flat_parameters(self) -> Array:
        return self._flat

    def parameters(self) -> list:
        """Per layer W (in, out) and b (out,): views into the flat array and its gradient."""
        key = (id(self._flat.data), id(self._flat.grad.data) if self._flat.grad is not None else None)
        if getattr(self, "_views", (None,))[0] != key:     # built once per buffer (the forward asks every call)
            out = []
            for (w, b), fi, fo in zip(self.offsets, self.sizes[:-1], self.sizes[1:]):
                out += [_view(self._flat, w, (fi, fo)), _view(self._flat, b, (fo,))]
            self._views = (key, out)
        return list(self._views[1])

    # --------------------------------------------------------------- forward
    def __call__(self, x) -> Array:
        xs = self._as_streams(x)
        y = self._forward(xs, [()])
        return Array(y.data[0], y.elem, True, Array(y.grad.data[0], y.elem))

    def jet(self, x, streams) -> Array:
        """Streams of the output: (S, N, out) for ``streams`` (closed under sub-multisets)."""
        streams = jets.close_streams(streams)
        xa = self._as_streams(x)
        n_in = self.sizes[0]
        S, N = len(streams), xa.data.shape[1]
        xs = np.zeros((S, N, n_in), dtype=self.dtype)
        xs[0] = xa.data[0]
        for s, m in enumerate(streams):
            if len(m) == 1:
                xs[s, :, m[0]] = 1.0       # d x / d x_k = e_k; higher derivatives of inputs vanish
        return self._forward(array(xs, dtype=self.dtype), streams), streams

    def _as_streams(self, x) -> Array:
        if isinstance(x, Array):
            d = x.data
            g = x.grad.data.reshape((1,) + d.shape) if x.grad is not None else None
            if d.dtype != self.dtype:
                raise TypeError(f"the network holds {self.dtype}; the input is {d.dtype}")
            out = Array(d.reshape((1,) + d.shape), x.elem, x.requires_grad,
                        Array(g, x.elem) if g is not None else None)
        else:
            d = np.ascontiguousarray(x, dtype=self.dtype)
            out = array(d.reshape((1,) + d.shape), dtype=self.dtype)
        if out.data.ndim != 3 or out.data.shape[2] != self.sizes[0]:
            raise ValueError(f"the network takes inputs of shape (N, {self.sizes[0]}), got {np.shape(x)}")
        return out

    def _forward(self, xs: Array, streams) -> Array:
        """Input streams (S, N, in) -> output streams (S, N, out), one kernel launch per layer."""
        S, N = xs.data.shape[:2]
        h = xs
        params = self.parameters()
        for k, (fo, act) in enumerate(zip(self.sizes[1:], self.acts)):
            W, b = params[2 * k], params[2 * k + 1]
            z = Array(np.empty((S, N, fo), dtype=self.dtype), T.from_numpy(self.dtype), True)
            y = Array(np.empty((S, N, fo), dtype=self.dtype), T.from_numpy(self.dtype), True)
            if S == 1:
                jets.dense_kernel(act, streams)(_flat2(h), W, b, _flat2(z), _flat2(y))
            else:       # z twice: 2-D for the product, 3-D for the streams (the same buffer and gradient)
                jets.dense_kernel(act, streams)(_flat2(h), W, b, _flat2(z), z, y)
            h = y
        return h

    # ------------------------------------------------- streams, points last (PINN training)
    def _wt_views(self) -> list:
        """Per layer Wt = [W; b].T: (out, in + 1), a transposed view of the flat parameters and gradient."""
        key = (id(self._flat.data), id(self._flat.grad.data))
        if getattr(self, "_wts", (None,))[0] != key:
            out = []
            for (w, b), fi, fo in zip(self.offsets, self.sizes[:-1], self.sizes[1:]):
                block = (slice(w, b + fo),)
                out.append(Array(self._flat.data[block].reshape(fi + 1, fo).T, self._flat.elem, True,
                                 Array(self._flat.grad.data[block].reshape(fi + 1, fo).T, self._flat.elem)))
            self._wts = (key, out)
        return self._wts[1]

    def _stream_buffers(self, S: int, N: int, M: int) -> dict:
        """Arrays for :meth:`_jet_t` over S streams of N points and M value-only points (with gradients)."""
        el = T.from_numpy(self.dtype)

        def arr(shape):
            return Array(np.zeros(shape, dtype=self.dtype), el, True)

        def view(a, f):
            return Array(f(a.data), el, True, Array(f(a.grad.data), el))
        layers = []
        for fo in self.sizes[1:]:
            z, y = arr((S, fo, N)), arr((S, fo + 1, N))
            L = {"y": y, "z_all": z, "z": [view(z, lambda d, s=s: d[s]) for s in range(S)],
                 "zf": view(z, lambda d: d.reshape(S, -1)), "yf": view(y, lambda d: d.reshape(S, -1)),
                 "x_next": [view(y, lambda d, s=s: d[s]) for s in range(S)]}
            if M:
                L["zc"], L["yc"] = arr((fo, M)), arr((fo + 1, M))
            layers.append(L)
        n_in = self.sizes[0]
        return {"shape": (S, N, M), "layers": layers, "dirty": False,
                "arrays": [L[k] for L in layers for k in ("y", "z_all", "zc", "yc") if k in L],
                "x0": np.zeros((S, n_in + 1, N), dtype=self.dtype), "xc": np.zeros((n_in + 1, M), dtype=self.dtype)}

    def _jet_t(self, x, streams, xc=None, buffers=None):
        """Streams of the output, points last: (Y (S, out + 1, N), Yc (out + 1, M) or None).

        x: (N, in) points; ``streams`` closed under sub-multisets (value first); xc: (M, in) value-only
        points evaluated in the same launches.  One :func:`difsci.kernels.dense_streams_kernel` launch per
        layer, recorded on the active Tape.  ``buffers`` (from :meth:`_stream_buffers`) are reused:
        their gradients must be zero (a completed backward leaves them so)."""
        from ..kernels.activations import for_dtype
        from ..kernels.linalg import dense_streams_kernel
        S, N, M = len(streams), len(x), 0 if xc is None else len(xc)
        B = buffers if buffers is not None else self._stream_buffers(S, N, M)
        n_in = self.sizes[0]
        x0 = B["x0"]
        x0[0, :n_in] = x.T
        x0[0, n_in] = 1.0
        for s, m in enumerate(streams[1:], 1):
            x0[s] = 0.0
            if len(m) == 1:
                x0[s, m[0]] = 1.0       # d x / d x_k = e_k; higher derivatives of inputs vanish
        h = [x0[s] for s in range(S)]
        if M:
            B["xc"][:n_in] = xc.T
            B["xc"][n_in] = 1.0
            hc = B["xc"]
        for L, act, Wt in zip(B["layers"], self.acts, self._wt_views()):
            k = dense_streams_kernel(for_dtype(act, self.dtype), streams, cond=bool(M))
            if M:
                k(Wt, *h, *L["z"], L["zf"], L["yf"], hc, L["zc"], L["yc"])
                hc = L["yc"]
            else:
                k(Wt, *h, *L["z"], L["zf"], L["yf"])
            h = L["x_next"]
        last = B["layers"][-1]
        return last["y"], (last["yc"] if M else None)

    # ------------------------------------------------------------ in kernels
    @property
    def func(self):
        """``@ds.func (params, x) -> y``: x a vector of the input size (a float if 1), y likewise."""
        if self._func is None:
            from .netfunc import mlp_func
            self._func = mlp_func(self)
        return self._func

    # --------------------------------------------------------------- storage
    def save(self, path) -> None:
        np.savez(path, sizes=np.array(self.sizes), params=self._flat.numpy(), dtype=str(self.dtype),
                 activation=str(activations.key_of(self.acts[0]) if len(self.acts) > 1 else "identity"),
                 output_activation=str(activations.key_of(self.acts[-1])))

    @classmethod
    def load(cls, path) -> "MLP":
        with np.load(path) as f:
            net = cls([int(s) for s in f["sizes"]], activation=str(f["activation"]),
                      dtype=np.dtype(str(f["dtype"])), output_activation=str(f["output_activation"]))
            net._flat.data[...] = f["params"]
        return net

    def __repr__(self):
        return f"MLP({self.sizes}, activation={self.activation!r}, dtype={self.dtype.name})"


class Linear(MLP):
    """One dense layer ``y = act(x @ W + b)`` (an MLP with a single layer)."""

    def __init__(self, n_in, n_out, activation=None, dtype=np.float64, seed=0, init="xavier"):
        super().__init__([n_in, n_out], dtype=dtype, seed=seed, init=init, output_activation=activation)
