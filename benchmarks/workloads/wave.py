"""Workload 4: 2-D wave equation (DiffTaichi's wave), gradient w.r.t. the initial field.

    h[t+1] = 2 h[t] - h[t-1] + k * lap(h[t])   (interior, t = 1 .. T-2; k = (c dt / dx)^2)
    loss   = sum((h[T-1] - target)^2)
    gradient: d loss / d h[0] and d loss / d h[1] (the initial field)

difsci: (a) one launch per step under a ``ds.Tape`` (API.md §4's example)
and (b) one kernel with a ``ds.serial`` time loop.  Reference: hand-written
numba, forward with the time loop inside one function, backward in gather
form (each adjoint element reads its neighbours' adjoints: no atomics) into
a full (T, n, n) adjoint array that it writes, never accumulates.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

import difsci as ds

from .. import whatif
from ..harness import Case, assert_close

SIZES = {"tiny": (12, 10), "quick": (64, 64), "full": (128, 256)}
K = 0.1     # (c dt / dx)^2, stable below 0.5


@ds.kernel
def wave_step(h: ds.f64[:, :, :], t: int, k: float):
    n, m = h.shape[1], h.shape[2]
    for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
        lap = h[t, i + 1, j] + h[t, i - 1, j] + h[t, i, j + 1] + h[t, i, j - 1] - 4.0 * h[t, i, j]
        h[t + 1, i, j] = 2.0 * h[t, i, j] - h[t - 1, i, j] + k * lap


@ds.kernel
def wave_loss(h: ds.f64[:, :, :], target: ds.f64[:, :], loss: ds.f64[()]):
    T, n, m = h.shape[0], h.shape[1], h.shape[2]
    for i, j in ds.ndrange(n, m):
        loss[None] += (h[T - 1, i, j] - target[i, j]) ** 2


@ds.kernel
def wave_sim(h: ds.f64[:, :, :], target: ds.f64[:, :], loss: ds.f64[()], k: float):
    T, n, m = h.shape[0], h.shape[1], h.shape[2]
    for t in ds.serial(range(1, T - 1)):
        for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
            lap = h[t, i + 1, j] + h[t, i - 1, j] + h[t, i, j + 1] + h[t, i, j - 1] - 4.0 * h[t, i, j]
            h[t + 1, i, j] = 2.0 * h[t, i, j] - h[t - 1, i, j] + k * lap
    for i, j in ds.ndrange(n, m):
        loss[None] += (h[T - 1, i, j] - target[i, j]) ** 2


# ------------------------------------------------------------- reference
@njit(parallel=True, error_model="numpy", cache=True)
def ref_forward(h, target, k):
    T, n, m = h.shape
    for t in range(1, T - 1):
        for i in prange(1, n - 1):
            for j in range(1, m - 1):
                lap = h[t, i + 1, j] + h[t, i - 1, j] + h[t, i, j + 1] + h[t, i, j - 1] - 4.0 * h[t, i, j]
                h[t + 1, i, j] = 2.0 * h[t, i, j] - h[t - 1, i, j] + k * lap
    s = 0.0
    for i in prange(n):
        for j in range(m):
            d = h[T - 1, i, j] - target[i, j]
            s += d * d
    return s


@njit(parallel=True, error_model="numpy", cache=True)
def ref_backward(h, target, k, g):
    """g[s] = d loss / d h[s] for s = 0, 1 (every point) and, for s >= 2, its interior.

    For s >= 2 only interior points of h[s] are computed from earlier ones, so
    only they pass adjoint back: g[s] keeps a zero boundary ring (g must be
    zero-initialised once; the ring is never written) and the interior gather
    needs no masks.  Gather form: g[s] = (2 - 4k) g[s+1] + k * neighbours(g[s+1]) - g[s+2].
    """
    T, n, m = h.shape
    c = 2.0 - 4.0 * k
    for i in prange(1, n - 1):
        for j in range(1, m - 1):
            g[T - 1, i, j] = 2.0 * (h[T - 1, i, j] - target[i, j])
    for s in range(T - 2, 1, -1):
        for i in prange(1, n - 1):
            for j in range(1, m - 1):
                v = c * g[s + 1, i, j] + k * (g[s + 1, i + 1, j] + g[s + 1, i - 1, j]
                                              + g[s + 1, i, j + 1] + g[s + 1, i, j - 1])
                if s + 2 <= T - 1:
                    v -= g[s + 2, i, j]
                g[s, i, j] = v
    # s = 1: read (as h[t]) by step t = 1 and (as h[t-1]) by step t = 2; every point, boundary too
    for i in prange(n):
        for j in range(m):
            v = 0.0
            if T - 1 >= 2:
                v = c * g[2, i, j]
                if i + 1 < n:
                    v += k * g[2, i + 1, j]
                if i >= 1:
                    v += k * g[2, i - 1, j]
                if j + 1 < m:
                    v += k * g[2, i, j + 1]
                if j >= 1:
                    v += k * g[2, i, j - 1]
            if T - 1 >= 3:
                v -= g[3, i, j]
            g[1, i, j] = v
    # s = 0: read only as h[t-1] by step t = 1
    for i in prange(n):
        for j in range(m):
            g[0, i, j] = -g[2, i, j] if T - 1 >= 2 else 0.0


def initial(n: int, T: int):
    xs = np.linspace(0, 1, n)
    bump = np.exp(-((xs[:, None] - 0.5) ** 2 + (xs[None, :] - 0.45) ** 2) / 0.01)
    h0 = np.zeros((T, n, n))
    h0[0] = bump
    h0[1] = bump
    target = 0.3 * np.exp(-((xs[:, None] - 0.3) ** 2 + (xs[None, :] - 0.6) ** 2) / 0.02)
    return h0, target


def cases(size: str, peers: dict | None = None) -> list[Case]:
    n, T = SIZES[size]
    h0, target0 = initial(n, T)

    # ---- reference
    rh = h0.copy()
    rg = np.zeros_like(h0)

    def ref_fwd():
        return ref_forward(rh, target0, K)

    def ref_fwd_bwd():
        loss = ref_forward(rh, target0, K)
        ref_backward(rh, target0, K, rg)
        return loss, rg[0], rg[1]

    # ---- difsci, one launch per step
    h = ds.array(h0, requires_grad=True)
    target = ds.array(target0)
    loss = ds.zeros((), requires_grad=True)

    def ds_fwd():
        loss.fill(0.0)
        for t in range(1, T - 1):
            wave_step(h, t, K)
        wave_loss(h, target, loss)
        return float(loss.numpy())

    def ds_fwd_bwd():
        h.zero_grad()
        loss.zero_grad()
        loss.fill(0.0)
        with ds.Tape() as tape:
            for t in range(1, T - 1):
                wave_step(h, t, K)
            wave_loss(h, target, loss)
        tape.backward(loss)
        return float(loss.numpy()), h.grad.numpy()[0], h.grad.numpy()[1]

    # ---- difsci, one ds.serial kernel
    hs = ds.array(h0, requires_grad=True)
    losss = ds.zeros((), requires_grad=True)

    def dss_fwd():
        losss.fill(0.0)
        wave_sim(hs, target, losss, K)
        return float(losss.numpy())

    def dss_fwd_bwd():
        hs.zero_grad()
        losss.zero_grad()
        losss.fill(0.0)
        with ds.Tape() as tape:
            wave_sim(hs, target, losss, K)
        tape.backward(losss)
        return float(losss.numpy()), hs.grad.numpy()[0], hs.grad.numpy()[1]

    # ---- what-if: difsci's generated code for `wave_sim` with serial loops and plain adds
    hw = ds.array(h0, requires_grad=True)
    lossw = ds.zeros((), requires_grad=True)
    pair = []

    def whatif_fwd_bwd():
        if not pair:
            with ds.Tape() as tape:
                wave_sim(hw, target, lossw, K)
            tape.backward(lossw)
            names = {"h": hw, "target": target, "loss": lossw, "k": K}
            pair.extend(whatif.forward_and_adjoint(wave_sim, names))
        hw.zero_grad()
        lossw.zero_grad()
        lossw.fill(0.0)
        pair[0]()
        lossw.grad.fill(1.0)
        pair[1]()
        return float(lossw.numpy()), hw.grad.numpy()[0], hw.grad.numpy()[1]

    def verify_fwd(res):
        for k, got in res.items():
            assert_close(f"{k}: loss", got, res["numba"], rtol=1e-10)

    def verify_fb(res):
        want = res["numba"]
        assert np.max(np.abs(want[1])) > 0, "degenerate case: zero gradient"
        for k, got in res.items():
            assert_close(f"{k}: loss", got[0], want[0], rtol=1e-10)
            assert_close(f"{k}: d loss / d h[0]", got[1], want[1], rtol=1e-9)
            assert_close(f"{k}: d loss / d h[1]", got[2], want[2], rtol=1e-9)

    fwd = {"numba": ref_fwd, "difsci": ds_fwd, "difsci serial": dss_fwd}
    fb = {"numba": ref_fwd_bwd, "difsci": ds_fwd_bwd, "difsci serial": dss_fwd_bwd}
    if size != "quick":      # diagnostics compile without a cache: left out of --quick
        fb["what-if: 1 thread, no atomics"] = whatif_fwd_bwd
    if peers and "jax" in peers:
        jf, jfb = peers["jax"].wave(h0, target0, K)
        fwd["jax"] = jf
        fb["jax"] = jfb
    # ---- where the backward time goes (no results to compare: the parts are verified above)
    tape_s = ds.Tape()
    with tape_s:
        dss_fwd()

    def dss_zero():
        hs.zero_grad()
        losss.zero_grad()

    def dss_bwd():
        dss_zero()
        tape_s.backward(losss)

    def ref_bwd():
        ref_backward(rh, target0, K, rg)

    parts = {"numba backward": ref_bwd, "difsci serial: zero_grad + backward": dss_bwd,
             "difsci serial: zero_grad only": dss_zero}

    label = f"4 wave {n}^2 x {T} f64"
    notes = {"difsci": f"{T - 2} step launches + loss", "difsci serial": "one ds.serial launch"}
    fb_notes = {"difsci": f"Tape, {2 * (T - 1)} launches, incl. zero_grad",
                "difsci serial": "Tape, 2 launches, incl. zero_grad",
                "what-if: 1 thread, no atomics": "wave_sim source, prange->range, atomics->+="}
    both = ("difsci", "difsci serial")
    return [
        Case(label, "forward", fwd, ref="numba", target=None, verify=verify_fwd, notes=notes),
        Case(label, "fwd+bwd", fb, ref="numba", target=1.3, verify=verify_fb, target_impls=both, notes=fb_notes),
        Case(label, "backward parts", parts, ref="numba backward", target=None, verify=None,
             notes={"difsci serial: zero_grad only": f"h.grad is {h0.nbytes / 2**20:.0f} MiB"}),
    ]
