"""The cuda backend, without a GPU: kernels and their adjoints under numba's
CUDA simulator, and a PTX compile check of the generated kernels for sm_90.

numba reads ``NUMBA_ENABLE_CUDASIM`` when it is imported, so the simulator
cases run in a child process (this file run as a script, ``--child sim``)
that sets it first; each case runs on the ``python`` backend (the oracle) and
on ``cuda`` and compares results and gradients.  The PTX check runs in a
second child (``--child ptx``) without the simulator: ``cuda.compile_ptx``
needs no GPU, only libnvvm (NUMBA_NOTES §2; skipped with the reason when
libnvvm is missing).  Both children start together when the module's first
test asks for them.  Sizes stay small: the simulator costs ~150 us a thread.

On a machine with a GPU, ``DIFSCI_CUDA_TESTS=real`` runs the same cases on the
device instead of the simulator (benchmarks/gpu_check.sh does).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REAL = os.environ.get("DIFSCI_CUDA_TESTS") == "real"


# =====================================================================================
# the child: kernels and cases (run with the simulator, or on a real GPU)
# =====================================================================================
def _define():
    """Kernels of the cases (defined in the child only: importing difsci must follow the env setup)."""
    import difsci as ds

    K = {}

    @ds.kernel
    def saxpy(x: ds.f32[:], y: ds.f32[:], out: ds.f32[:], a: float):
        for i in range(x.shape[0]):
            out[i] = a * x[i] + y[i]

    @ds.kernel
    def sq_sum(x: ds.f64[:], loss: ds.f64[()]):
        for i in range(x.shape[0]):
            loss[None] += x[i] * x[i]

    @ds.kernel
    def wave(h: ds.f64[:, :, :], c: float):
        n, m = h.shape[1], h.shape[2]
        for t in ds.serial(range(1, h.shape[0] - 1)):
            for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
                lap = h[t, i + 1, j] + h[t, i - 1, j] + h[t, i, j + 1] + h[t, i, j - 1] - 4.0 * h[t, i, j]
                h[t + 1, i, j] = 2.0 * h[t, i, j] - h[t - 1, i, j] + c * lap

    @ds.kernel
    def wave_loss(h: ds.f64[:, :, :], target: ds.f64[:, :], loss: ds.f64[()]):
        T = h.shape[0]
        for i, j in ds.ndrange(h.shape[1], h.shape[2]):
            d = h[T - 1, i, j] - target[i, j]
            loss[None] += d * d

    @ds.kernel
    def scatter(x: ds.f64[:], idx: ds.i64[:], out: ds.f64[:], total: ds.f64[()]):
        for i in range(x.shape[0]):
            v = x[i] * x[i] + ds.sin(x[i])
            out[idx[i]] += v                        # many i hit one element: atomics
            out[(idx[i] + 1) % out.shape[0]] -= 0.5 * v
            ds.atomic_add(total, None, ds.exp(0.1 * x[i]))

    @ds.kernel
    def extremes(x: ds.f64[:], xf: ds.f32[:], idx: ds.i64[:], hi: ds.f64[:], lo: ds.f32[:], cnt: ds.i32[:],
                 imax: ds.i64[:]):
        for i in range(x.shape[0]):
            ds.atomic_max(hi, idx[i], x[i])
            ds.atomic_min(hi, 4, x[i])
            ds.atomic_min(lo, idx[i], xf[i])
            cnt[idx[i]] += 1
            ds.atomic_max(imax, idx[i], i * 7 % 50)
            ds.atomic_min(imax, 4, i - 1000)

    @ds.func
    def spring_force(xa: ds.vec2, xb: ds.vec2, rest: float, k: float) -> ds.vec2:
        d = xb - xa
        length = ds.norm(d)
        return k * (length - rest) * d / length

    @ds.func
    def poly(v: float, coeffs: ds.f64[:]) -> float:
        s = 0.0
        for j in range(coeffs.shape[0]):
            s = s * v + coeffs[j]
            if s > 50.0:
                return s
        return s * 0.5

    @ds.kernel
    def springs(x: ds.vec2[:, :], v: ds.vec2[:, :], rest: ds.f64[:], dt: float):
        n = x.shape[1]
        for t in ds.serial(range(x.shape[0] - 1)):
            for i in range(n):
                f = spring_force(x[t, i], x[t, (i + 1) % n], rest[i], 5.0) \
                    - spring_force(x[t, (i + n - 1) % n], x[t, i], rest[(i + n - 1) % n], 5.0)
                v[t + 1, i] = 0.98 * v[t, i] + dt * (f + ds.vec2(0.0, -0.5))
            for i in range(n):
                x[t + 1, i] = x[t, i] + dt * v[t + 1, i]

    @ds.kernel
    def vec_loss(x: ds.vec2[:, :], coeffs: ds.f64[:], loss: ds.f64[()]):
        T = x.shape[0]
        for i in range(x.shape[1]):
            p = x[T - 1, i]
            loss[None] += poly(p.x * 0.3, coeffs) + ds.dot(p, p)

    @ds.kernel
    def carried(b: ds.f64[:, :], a: ds.f64[:], out: ds.f64[:]):
        for i in range(out.shape[0]):
            s = 0.0
            for j in range(b.shape[1]):
                s = s * a[i] + b[i, j]
            out[i] = ds.tanh(s)

    @ds.kernel
    def while_loop(x: ds.f64[:], y: ds.f64[:]):
        for i in range(x.shape[0]):
            s = x[i]
            k = 0
            while s < 4.0 and k < 60:
                s = s * 1.1 + 0.05 * ds.sin(s)
                k += 1
            y[i] = s / (k + 1.0)

    @ds.kernel
    def outer_scalar(s: ds.f64[:], x: ds.f64[:], y: ds.f64[:]):
        k = s[0] * 2.0 + ds.cos(s[1])            # host code; its adjoint is a reduction over i
        for i in range(x.shape[0]):
            y[i] = k * x[i] + ds.sin(k * x[i])

    @ds.kernel
    def mathy(x: ds.f32[:], z: ds.f64[:], y: ds.f32[:], w: ds.f64[:], seed: int):
        for i in range(x.shape[0]):
            a = x[i]
            y[i] = (ds.floor(a) + ds.ceil(a * 2.0) + ds.sign(a) + ds.cbrt(a) + ds.exp2(a) + max(a, 0.25)
                    + min(a, -0.5) + a % 0.7 + a // 0.3 + ds.abs(a) ** 1.5 + ds.clamp(a, -1.0, 1.0)
                    + ds.atan2(a, 1.5) + ds.erf(a) + ds.hypot(a, 2.0))
            b = z[i]
            w[i] = (ds.randn(seed, i) + ds.randu(seed, i, 7) + b % -0.7 + b // 0.3 + ds.select(b > 0, b, -b)
                    + ds.log1p(b * b) + ds.expm1(b * 0.1) + ds.sqrt(b * b + 1.0) + ds.floor(b) + ds.sign(b)
                    + ds.f64(ds.i32(b * 10.0)) + float(int(b * 3.0) % 4))

    @ds.kernel
    def grid3(a: ds.f64[:, :, :], out: ds.f64[:, :, :]):
        for i, j, k in ds.ndrange((1, a.shape[0]), a.shape[1], (0, a.shape[2] - 1)):
            out[i, j, k] = a[i - 1, j, k + 1] * (i + 10 * j + 100 * k)

    @ds.kernel
    def deep(x: ds.f64[:], y: ds.f64[:], n: int):
        for i in range(x.shape[0]):
            s = x[i]
            for j in range(n):
                s = ds.sin(s) * 1.1 + 0.01 * j     # one push per step: the stack needs n entries
            y[i] = s

    @ds.kernel
    def two_loops(x: ds.f64[:], acc: ds.f64[:], y: ds.f64[:]):
        for i in range(x.shape[0]):
            acc[i % 2] += x[i] * x[i]
        for i in range(x.shape[0]):          # reads what the loop above accumulated
            y[i] = acc[i % 2] * x[i]

    @ds.kernel
    def peaks(x: ds.f64[:], idx: ds.i64[:], hi: ds.f64[:]):
        for i in range(x.shape[0]):
            ds.atomic_max(hi, idx[i], ds.sin(x[i]))
            ds.atomic_min(hi, 4, x[i] * 0.5)

    @ds.kernel
    def dense(x: ds.f64[:, :], W: ds.f64[:, :], z: ds.f64[:, :], y: ds.f64[:, :]):
        ds.matmul(x, W, z)                          # a whole-array product (BLAS on the CPU)
        for i, j in ds.ndrange(z.shape[0], z.shape[1]):
            y[i, j] = ds.tanh(z[i, j])

    @ds.kernel
    def wave2(hp: ds.f64[:, :], h: ds.f64[:, :], hp2: ds.f64[:, :], h2: ds.f64[:, :], c2: ds.f64[:, :]):
        n, m = h.shape[0], h.shape[1]
        for i, j in ds.ndrange(n, m):
            hp2[i, j] = h[i, j]
            if i > 0 and i < n - 1 and j > 0 and j < m - 1:
                lap = h[i + 1, j] + h[i - 1, j] + h[i, j + 1] + h[i, j - 1] - 4.0 * h[i, j]
                h2[i, j] = 2.0 * h[i, j] - hp[i, j] + c2[i, j] * lap
            else:
                h2[i, j] = 0.0

    @ds.kernel
    def field_loss(h: ds.f64[:, :], target: ds.f64[:, :], loss: ds.f64[()]):
        for i, j in ds.ndrange(h.shape[0], h.shape[1]):
            loss[None] += (h[i, j] - target[i, j]) ** 2

    K.update(locals())
    return K


def _rng(seed=0):
    return np.random.default_rng(seed)


def _ds():
    import difsci as ds
    return ds


def case_saxpy(K):
    ds = _ds()
    r = _rng(1)
    n = 700                                            # 3 blocks, the last one partial
    x = ds.array(r.standard_normal(n).astype(np.float32), requires_grad=True)
    y = ds.array(r.standard_normal(n).astype(np.float32), requires_grad=True)
    out = ds.zeros(n, dtype=np.float32, requires_grad=True)
    with ds.Tape() as tape:
        K["saxpy"](x, y, out, 2.5)
    tape.backward(out, r.standard_normal(n).astype(np.float32))
    return [out, x.grad, y.grad]


def case_wave(K):
    ds = _ds()
    r = _rng(2)
    T, n = 8, 14
    h0 = np.zeros((T, n, n))
    h0[0, 5:9, 5:9] = r.random((4, 4))
    h0[1] = h0[0]
    h = ds.array(h0, requires_grad=True)
    target = ds.array(r.random((n, n)) * 0.1)
    loss = ds.zeros((), requires_grad=True)
    with ds.Tape() as tape:
        K["wave"](h, 0.2)
        K["wave_loss"](h, target, loss)
    tape.backward(loss)
    return [h, loss, h.grad]


def case_scatter(K):
    ds = _ds()
    r = _rng(3)
    n = 300
    x = ds.array(r.standard_normal(n), requires_grad=True)
    idx = ds.array(r.integers(0, 5, n).astype(np.int64))
    out = ds.zeros(5, requires_grad=True)
    total = ds.zeros((), requires_grad=True)
    loss = ds.zeros((), requires_grad=True)
    with ds.Tape() as tape:
        K["scatter"](x, idx, out, total)
        K["sq_sum"](out, loss)
    tape.backward(loss)
    hi = ds.array(np.full(5, -9.0))
    lo = ds.array(np.full(5, 9.0, np.float32))
    cnt = ds.zeros(5, dtype=np.int32)
    imax = ds.zeros(5, dtype=np.int64)
    K["extremes"](x, ds.array(x.numpy().astype(np.float32)), idx, hi, lo, cnt, imax)
    return [out, total, loss, x.grad, hi, lo, cnt, imax]


def case_springs(K):
    ds = _ds()
    r = _rng(4)
    T, n = 12, 24
    x0 = np.zeros((T, n, 2))
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x0[0, :, 0], x0[0, :, 1] = np.cos(ang), np.sin(ang)
    x = ds.array(x0 + 0.01 * r.standard_normal(x0.shape) * (np.arange(T) == 0)[:, None, None],
                 dtype=ds.vec2, requires_grad=True)
    v = ds.zeros((T, n), dtype=ds.vec2, requires_grad=True)
    rest = ds.array(np.full(n, 0.3) + 0.01 * r.random(n), requires_grad=True)
    coeffs = ds.array(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    loss = ds.zeros((), requires_grad=True)
    with ds.Tape() as tape:
        K["springs"](x, v, rest, 0.02)
        K["vec_loss"](x, coeffs, loss)
    tape.backward(loss)
    return [x, v, loss, x.grad, rest.grad, coeffs.grad]


def case_loops(K):
    ds = _ds()
    r = _rng(5)
    b = ds.array(r.standard_normal((40, 6)), requires_grad=True)
    a = ds.array(0.5 * r.standard_normal(40), requires_grad=True)
    out = ds.zeros(40, requires_grad=True)
    x = ds.array(r.random(50) * 3.0, requires_grad=True)
    y = ds.zeros(50, requires_grad=True)
    loss = ds.zeros((), requires_grad=True)
    with ds.Tape() as tape:
        K["carried"](b, a, out)
        K["while_loop"](x, y)
        K["sq_sum"](out, loss)
        K["sq_sum"](y, loss)
    tape.backward(loss)
    return [out, y, loss, b.grad, a.grad, x.grad]


def case_outer_scalar(K):
    ds = _ds()
    r = _rng(6)
    s = ds.array(np.array([0.3, 0.7]), requires_grad=True)
    x = ds.array(r.standard_normal(300), requires_grad=True)
    y = ds.zeros(300, requires_grad=True)
    loss = ds.zeros((), requires_grad=True)
    with ds.Tape() as tape:
        K["outer_scalar"](s, x, y)
        K["sq_sum"](y, loss)
    tape.backward(loss)
    return [y, loss, s.grad, x.grad]


def case_math(K):
    ds = _ds()
    r = _rng(7)
    x = ds.array(np.concatenate([[0.0, -0.0, 1.0, -1.0, 0.5], 3 * r.standard_normal(95)]).astype(np.float32))
    z = ds.array(np.concatenate([[0.0, 2.0, -2.0], 3 * r.standard_normal(97)]))
    y = ds.zeros(100, dtype=np.float32)
    w = ds.zeros(100)
    K["mathy"](x, z, y, w, 42)
    return [y, w]


def case_ndrange3(K):
    ds = _ds()
    r = _rng(8)
    a = ds.array(r.standard_normal((5, 6, 7)), requires_grad=True)
    out = ds.zeros((5, 6, 7), requires_grad=True)
    with ds.Tape() as tape:
        K["grid3"](a, out)
    tape.backward(out, r.standard_normal((5, 6, 7)))
    return [out, a.grad]


def case_two_loops(K):
    ds = _ds()
    r = _rng(9)
    x = ds.array(r.standard_normal(37), requires_grad=True)
    acc = ds.zeros(2, requires_grad=True)
    y = ds.zeros(37, requires_grad=True)
    loss = ds.zeros((), requires_grad=True)
    with ds.Tape() as tape:
        K["two_loops"](x, acc, y)
        K["sq_sum"](y, loss)
    tape.backward(loss)
    return [acc, y, x.grad]


def case_minmax_grad(K):
    ds = _ds()
    r = _rng(13)
    x = ds.array(r.standard_normal(200), requires_grad=True)
    idx = ds.array(r.integers(0, 4, 200).astype(np.int64))
    hi = ds.array(np.full(5, -3.0), requires_grad=True)
    hi.numpy()
    with ds.Tape() as tape:
        K["peaks"](x, idx, hi)
    tape.backward(hi, np.arange(1.0, 6.0))
    return [hi, x.grad]


def case_matmul(K):
    ds = _ds()
    r = _rng(12)
    x = ds.array(r.standard_normal((9, 4)), requires_grad=True)
    W = ds.array(r.standard_normal((4, 6)), requires_grad=True)
    z = ds.zeros((9, 6), requires_grad=True)
    y = ds.zeros((9, 6), requires_grad=True)
    with ds.Tape() as tape:
        K["dense"](x, W, z, y)
    tape.backward(y, r.standard_normal((9, 6)))
    return [z, y, x.grad, W.grad]


def case_deterministic(K):
    """deterministic=True: float atomics on one thread, in order — bitwise equal from run to run."""
    ds = _ds()
    r = _rng(10)
    x = r.standard_normal(400)
    res = []
    try:
        ds.init(deterministic=True)
        for _ in range(2):
            loss = ds.zeros(())
            K["sq_sum"](ds.array(x), loss)
            res.append(loss.numpy().copy())
    finally:
        ds.init(deterministic=False)
    assert res[0].tobytes() == res[1].tobytes(), res
    return [res[0]]


def case_rollout(K):
    """ds.Rollout with 2 checkpoints over 7 steps: snapshots live on the state's device."""
    ds = _ds()
    r = _rng(11)
    n = 10
    hp = ds.array(r.standard_normal((n, n)) * 0.1, requires_grad=True)
    h = ds.array(r.standard_normal((n, n)) * 0.1, requires_grad=True)
    c2 = ds.array(0.1 + 0.1 * r.random((n, n)), requires_grad=True)
    target = ds.array(r.random((n, n)) * 0.1)
    loss = ds.zeros((), requires_grad=True)

    def step(t, hp, h, hp2, h2):
        K["wave2"](hp, h, hp2, h2, c2)

    sim = ds.Rollout(step, state=[hp, h], steps=7, checkpoints=2)
    with ds.Tape() as tape:
        sim.run()
        K["field_loss"](sim.state[1], target, loss)
    tape.backward(loss)
    assert sim.stats["max_snapshots"] <= 2
    return [sim.state[1], loss, hp.grad, h.grad, c2.grad]


CASES = {k[5:]: v for k, v in dict(globals()).items() if k.startswith("case_")}


# ---------------------------------------------- device behaviour (cuda only, no oracle)
def dev_arrays(K):
    ds = _ds()
    from difsci.lang.backends.devices import is_device_array
    a = np.arange(12.0).reshape(3, 4)
    x = ds.array(a, requires_grad=True)                 # the backend's device by default
    assert x.device == "cuda" and is_device_array(x.data) and is_device_array(x.grad.data)
    assert x.shape == (3, 4) and x.ndim == 2 and x.dtype == np.float64 and x.grad.device == "cuda"
    h = x.numpy()
    assert isinstance(h, np.ndarray) and np.array_equal(h, a)
    h[0, 0] = 99.0                                      # a host copy: the device data is unchanged
    assert x.numpy()[0, 0] == 0.0
    assert np.array_equal(np.asarray(x), a)
    c = x.to("cpu")
    assert c.device == "cpu" and isinstance(c.data, np.ndarray) and np.array_equal(c.numpy(), a)
    assert c.grad is not None and c.grad.device == "cpu"
    g = c.to("cuda")
    assert g.device == "cuda" and np.array_equal(g.numpy(), a)
    z = ds.zeros((2, 3), dtype=np.float32, device="cuda")
    assert z.device == "cuda" and z.numpy().dtype == np.float32 and not z.numpy().any()
    cpu = ds.zeros(4, device="cpu")
    assert cpu.device == "cpu" and isinstance(cpu.data, np.ndarray)
    o = ds.ones(5, device="cuda").fill(3.0)
    assert np.array_equal(o.numpy(), np.full(5, 3.0))
    v = ds.zeros(4, dtype=ds.vec2, device="cuda")
    assert v.shape == (4,) and v.numpy().shape == (4, 2)
    s = ds.zeros((), device="cuda", requires_grad=True)
    assert s.shape == () and s.numpy().shape == ()
    x.grad.fill(1.0)
    x.zero_grad()
    assert not x.grad.numpy().any()
    cp = x.copy()
    assert cp.device == "cuda" and np.array_equal(cp.numpy(), a)
    view = x[1:, 1:3]                                   # a device view; its grad is the matching view
    assert view.device == "cuda" and view.shape == (2, 2) and np.array_equal(view.numpy(), a[1:, 1:3])
    assert "device='cuda'" in repr(z)
    try:
        ds.zeros(3, dtype=np.int32, requires_grad=True, device="cuda")
        raise AssertionError("int arrays cannot carry gradients")
    except TypeError:
        pass
    return []


def dev_views_and_numpy(K):
    ds = _ds()
    r = _rng(11)
    xs = r.standard_normal(300).astype(np.float32)
    x = ds.array(xs)
    y = ds.array(np.ones(300, np.float32))
    out = ds.zeros(300, dtype=np.float32)
    K["saxpy"](x[1:], y[1:], out[:-1], 2.0)            # kernels accept device views
    assert np.allclose(out.numpy()[:-1], 2.0 * xs[1:] + 1.0) and out.numpy()[-1] == 0.0
    # plain numpy arrays are accepted too (copied to the device and back for this launch)
    on = np.zeros(300, np.float32)
    K["saxpy"](xs, np.ones(300, np.float32), on, 3.0)
    assert np.allclose(on, 3.0 * xs + 1.0)
    loss = np.zeros(())
    K["sq_sum"](xs.astype(np.float64), loss)
    assert np.isclose(loss, (xs.astype(np.float64) ** 2).sum())
    return []


def dev_mixed(K):
    ds = _ds()
    x = ds.array(np.ones(8, np.float32))
    c = ds.array(np.ones(8, np.float32), device="cpu")
    out = ds.zeros(8, dtype=np.float32)
    try:
        K["saxpy"](x, c, out, 1.0)
        raise AssertionError("mixing devices must fail")
    except ValueError as e:
        msg = str(e)
        assert "saxpy" in msg and "`y`" in msg and "'cpu'" in msg and "mixes devices" in msg, msg
    ds.init(backend="cpu")
    try:
        K["saxpy"](x, x, out, 1.0)
        raise AssertionError("cuda arrays on the cpu backend must fail")
    except ValueError as e:
        assert "saxpy" in str(e) and "`x`" in str(e) and "'cuda'" in str(e), str(e)
    finally:
        ds.init(backend="cuda")
    return []


def dev_stack_overflow(K):
    """An adjoint whose value stack is too small raises BackendError (never a wrong gradient)."""
    ds = _ds()
    old = os.environ.get("DIFSCI_CUDA_STACK")
    os.environ["DIFSCI_CUDA_STACK"] = "16"
    try:
        kd = ds.kernel(K["deep"].src.pyfn)                # a fresh kernel object: compiled with 16 entries
        x = ds.array(np.linspace(0.1, 1.0, 40), requires_grad=True)
        y = ds.zeros(40, requires_grad=True)
        with ds.Tape() as tape:
            kd(x, y, 10)                                  # 10 pushes + 1: fits
        tape.backward(y, np.ones(40))
        g_ok = x.grad.numpy()
        assert np.all(np.isfinite(g_ok)) and np.abs(g_ok).max() > 0
        y2 = ds.zeros(40, requires_grad=True)
        with ds.Tape() as tape:
            kd(x, y2, 40)                                 # 41 pushes: overflow
        try:
            tape.backward(y2, np.ones(40))
            raise AssertionError("a stack overflow must raise")
        except ds.BackendError as e:
            msg = str(e)
            assert "deep_adjoint" in msg and "DIFSCI_CUDA_STACK=64" in msg and "16 entries" in msg, msg
    finally:
        if old is None:
            os.environ.pop("DIFSCI_CUDA_STACK", None)
        else:
            os.environ["DIFSCI_CUDA_STACK"] = old
    return []


def dev_source(K):
    src = K["wave"].source
    assert "@cuda.jit" in src and "cuda.grid(1)" in src and "for t in range(" in src, src
    asrc = K["wave"].adjoint.source
    assert "cuda.atomic.add(h_bar" in asrc, asrc
    return []


DEVICE_CASES = {k: v for k, v in dict(globals()).items() if k.startswith("dev_")}


def _tol(a):
    return (2e-5, 2e-5) if a.dtype == np.float32 else (1e-10, 1e-12)


def _compare(ref, got):
    assert len(ref) == len(got)
    for k, (a, b) in enumerate(zip(ref, got)):
        a = a.numpy() if hasattr(a, "numpy") else np.asarray(a)
        b = b.numpy() if hasattr(b, "numpy") else np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype, (k, a.shape, b.shape, a.dtype, b.dtype)
        if a.dtype.kind in "iub":
            np.testing.assert_array_equal(b, a, err_msg=f"result {k}")
        else:
            rt, at = _tol(a)
            np.testing.assert_allclose(b, a, rtol=rt, atol=at, err_msg=f"result {k}")


def child_sim(only=None) -> dict:
    import difsci as ds
    K = _define()
    out = {}
    for name, case in list(CASES.items()) + list(DEVICE_CASES.items()):
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        try:
            if name in CASES:
                ds.init(backend="python")
                ref = case(K)
                ref = [a.numpy().copy() if hasattr(a, "numpy") else np.array(a) for a in ref]
                ds.init(backend="cuda")
                got = case(K)
                from difsci.lang.backends.devices import is_device_array
                arrs = [a for a in got if isinstance(a, ds.Array)]
                assert all(a.device == "cuda" and is_device_array(a.data) for a in arrs), "results not on the device"
                _compare(ref, got)
            else:
                ds.init(backend="cuda")
                case(K)
            out[name] = {"ok": True, "s": round(time.perf_counter() - t0, 2)}
        except BaseException:
            out[name] = {"ok": False, "error": traceback.format_exc(), "s": round(time.perf_counter() - t0, 2)}
        finally:
            ds.init(backend="python", deterministic=False)
    return out


def child_ptx() -> dict:
    """Compile every kernel (and adjoint) of the cases to PTX for sm_90, with no GPU and no simulator."""
    out = {}
    try:
        from numba.cuda.cudadrv import nvvm
        nvvm.NVVM()                                    # libnvvm found?
    except Exception as e:                             # noqa: BLE001
        return {"_skip": f"libnvvm not found ({type(e).__name__}: {str(e).strip().splitlines()[0][:200]})"}
    from types import SimpleNamespace

    import numba.cuda.dispatcher as disp
    from numba import cuda
    # cuda.compile_ptx asks the (absent) device for its compute capability once a kernel
    # calls device functions; answer for it (NUMBA_NOTES §2)
    disp.get_current_device = lambda: SimpleNamespace(compute_capability=(9, 0))
    import difsci as ds
    from difsci.lang.compiler import render
    from difsci.lang.loader import load_source
    try:
        ds.init(backend="cuda")
        out["_init_error"] = "no error: a GPU is present"
    except ds.BackendError as e:
        out["_init_error"] = str(e)
    K = _define()
    ds.init(backend="python")
    fns = []
    for name, case in CASES.items():
        if name == "deterministic":
            continue
        try:
            case(K)                                    # specialises the kernels on the oracle
        except Exception:                              # noqa: BLE001
            out[name] = {"ok": False, "error": traceback.format_exc()}
    for kname, k in K.items():
        if not isinstance(k, ds.Kernel) or not k._specs:
            continue
        for spec in k._specs.values():
            fns.append(spec.fn)
            for ir_fn, _ in spec._adjoints.values():
                fns.append(ir_fn)
    for fn in fns:
        for variant in ("cuda", "cuda:deterministic"):
            t0 = time.perf_counter()
            try:
                mod = load_source(render(fn, variant), key=variant)
                n = 0
                for kern, sig in mod._CU_SIGNATURES.items():
                    ptx, _ = cuda.compile_ptx(getattr(mod, kern).py_func, sig, cc=(9, 0))
                    assert ".entry" in ptx or ".visible" in ptx
                    n += 1
                out[f"{fn.name}[{variant}]"] = {"ok": True, "kernels": n, "s": round(time.perf_counter() - t0, 2)}
            except Exception:                          # noqa: BLE001
                out[f"{fn.name}[{variant}]"] = {"ok": False, "error": traceback.format_exc()}
    return out


def _child_main(kind):
    if kind == "sim" and not REAL:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    res = child_sim() if kind == "sim" else child_ptx()
    print("@@RESULT@@" + json.dumps(res))


# =====================================================================================
# the tests (parent process)
# =====================================================================================
if __name__ != "__main__":
    import pytest

    _procs: dict = {}
    _results: dict = {}

    def _start(kind):
        if kind not in _procs:
            env = dict(os.environ)
            env.pop("NUMBA_ENABLE_CUDASIM", None)
            env.setdefault("PYTHONWARNINGS", "ignore")
            _procs[kind] = (subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", kind],
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env),
                            time.perf_counter())
        return _procs[kind]

    def _result(kind) -> dict:
        if kind not in _results:
            for k in ("sim", "ptx"):                    # both children run at once (2 cores)
                _start(k)
            p, t0 = _procs[kind]
            so, se = p.communicate(timeout=300)
            lines = [ln for ln in so.splitlines() if ln.startswith("@@RESULT@@")]
            if p.returncode != 0 or not lines:
                raise AssertionError(f"the {kind} child failed (rc {p.returncode}):\n{so[-4000:]}\n{se[-4000:]}")
            _results[kind] = json.loads(lines[-1][len("@@RESULT@@"):])
            _results[kind]["_wall"] = round(time.perf_counter() - t0, 1)
        return _results[kind]

    @pytest.mark.parametrize("name", sorted(CASES) + sorted(DEVICE_CASES))
    def test_cuda_simulator(name):
        """A case on the cuda backend (simulator, or a GPU with DIFSCI_CUDA_TESTS=real) vs the python backend."""
        r = _result("sim")[name]
        assert r["ok"], r["error"]

    def _ptx_results():
        res = _result("ptx")
        if "_skip" in res:
            pytest.skip(res["_skip"])
        return res

    def test_ptx_compile_sm90():
        """Every kernel and adjoint of the cases compiles to PTX for sm_90 (no GPU needed)."""
        res = _ptx_results()
        items = {k: v for k, v in res.items() if not k.startswith("_")}
        bad = {k: v["error"] for k, v in items.items() if not v["ok"]}
        assert not bad, "\n\n".join(f"{k}:\n{v}" for k, v in bad.items())
        assert sum(1 for k in items if k.endswith("_adjoint[cuda]")) >= 8, sorted(items)
        assert sum(v.get("kernels", 0) for v in items.values()) >= 30

    def test_init_cuda_without_gpu_names_the_simulator():
        res = _ptx_results()
        msg = res["_init_error"]
        if msg.startswith("no error"):
            pytest.skip("a GPU is present: ds.init(backend='cuda') succeeds")
        assert "NUMBA_ENABLE_CUDASIM=1" in msg and "GPU" in msg, msg


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        _child_main(sys.argv[2])
    else:   # a quick manual run: python tests/test_cuda_sim.py [case ...]
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1" if not REAL else os.environ.get("NUMBA_ENABLE_CUDASIM", "0")
        for k, v in child_sim(set(sys.argv[1:]) or None).items():
            print(k, "ok" if v["ok"] else "FAIL\n" + v["error"], v["s"], "s")
