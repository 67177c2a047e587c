"""Workload 5: mass-spring ring (DiffTaichi mass_spring style), gradient w.r.t. actuation.

20 masses on a ring, 40 springs (each mass to its 1st and 2nd neighbour).
Spring s has rest length ``rest[s] * (1 + amp[s] * sin(omega t dt))``; per
step the springs deposit impulses into ``v_inc[t]`` (a scatter onto masses),
then the masses advance (symplectic Euler, damping, gravity).  The loss is
the squared distance of the final positions to a target; the gradient is
taken w.r.t. the per-spring actuation amplitudes ``amp``.

difsci: (a) two kernels launched per step under a Tape (DiffTaichi's
structure) and (b) one kernel with a ``ds.serial`` time loop.  Reference:
hand-written numba without ``parallel`` (20 masses are far too few for
threads to pay), the time loop inside one function; its backward keeps only
rolling adjoints of x and v (the dynamics are linear in v, so only the x
history is needed).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

import difsci as ds

from .. import whatif
from ..harness import Case, assert_close

SIZES = {"tiny": 16, "quick": 256, "full": 2048}
N_MASS = 20
DT, OMEGA, DAMP, GRAV = 2e-3, 10.0, 0.999, -9.8


@ds.kernel
def apply_springs(x: ds.vec2[:, :], v_inc: ds.vec2[:, :], ia: ds.i32[:], ib: ds.i32[:], rest: ds.f64[:],
                  stiff: ds.f64[:], amp: ds.f64[:], t: int, dt: float, omega: float):
    for s in range(ia.shape[0]):
        a = ia[s]
        b = ib[s]
        d = x[t, b] - x[t, a]
        length = ds.norm(d)
        target = rest[s] * (1.0 + amp[s] * ds.sin(omega * t * dt))
        f = stiff[s] * (length - target) * d / length
        v_inc[t, a] += dt * f
        v_inc[t, b] -= dt * f


@ds.kernel
def advance(x: ds.vec2[:, :], v: ds.vec2[:, :], v_inc: ds.vec2[:, :], t: int, dt: float, damp: float, grav: float):
    for i in range(x.shape[1]):
        v[t + 1, i] = damp * v[t, i] + v_inc[t, i] + dt * ds.vec2(0.0, grav)
        x[t + 1, i] = x[t, i] + dt * v[t + 1, i]


@ds.kernel
def final_loss(x: ds.vec2[:, :], target: ds.vec2[:], loss: ds.f64[()]):
    T = x.shape[0] - 1
    for i in range(x.shape[1]):
        d = x[T, i] - target[i]
        loss[None] += ds.dot(d, d)


@ds.kernel
def simulate(x: ds.vec2[:, :], v: ds.vec2[:, :], v_inc: ds.vec2[:, :], ia: ds.i32[:], ib: ds.i32[:],
             rest: ds.f64[:], stiff: ds.f64[:], amp: ds.f64[:], target: ds.vec2[:], loss: ds.f64[()],
             dt: float, omega: float, damp: float, grav: float):
    T = x.shape[0] - 1
    for t in ds.serial(range(T)):
        for s in range(ia.shape[0]):
            a = ia[s]
            b = ib[s]
            d = x[t, b] - x[t, a]
            length = ds.norm(d)
            tl = rest[s] * (1.0 + amp[s] * ds.sin(omega * t * dt))
            f = stiff[s] * (length - tl) * d / length
            v_inc[t, a] += dt * f
            v_inc[t, b] -= dt * f
        for i in range(x.shape[1]):
            v[t + 1, i] = damp * v[t, i] + v_inc[t, i] + dt * ds.vec2(0.0, grav)
            x[t + 1, i] = x[t, i] + dt * v[t + 1, i]
    for i in range(x.shape[1]):
        d = x[T, i] - target[i]
        loss[None] += ds.dot(d, d)


# ------------------------------------------------------------- reference
@njit(error_model="numpy", cache=True)
def ref_forward(x, ia, ib, rest, stiff, amp, target, dt, omega, damp, grav):
    """x[0] given; fills x[1:]; returns the loss."""
    T = x.shape[0] - 1
    nm = x.shape[1]
    v = np.zeros((nm, 2))
    vinc = np.empty((nm, 2))
    for t in range(T):
        vinc[:] = 0.0
        ph = math.sin(omega * t * dt)
        for s in range(ia.shape[0]):
            a, b = ia[s], ib[s]
            d0 = x[t, b, 0] - x[t, a, 0]
            d1 = x[t, b, 1] - x[t, a, 1]
            length = math.sqrt(d0 * d0 + d1 * d1)
            c = stiff[s] * (length - rest[s] * (1.0 + amp[s] * ph)) / length * dt
            vinc[a, 0] += c * d0
            vinc[a, 1] += c * d1
            vinc[b, 0] -= c * d0
            vinc[b, 1] -= c * d1
        for i in range(nm):
            v[i, 0] = damp * v[i, 0] + vinc[i, 0]
            v[i, 1] = damp * v[i, 1] + vinc[i, 1] + dt * grav
            x[t + 1, i, 0] = x[t, i, 0] + dt * v[i, 0]
            x[t + 1, i, 1] = x[t, i, 1] + dt * v[i, 1]
    loss = 0.0
    for i in range(nm):
        for c in range(2):
            e = x[T, i, c] - target[i, c]
            loss += e * e
    return loss


@njit(error_model="numpy", cache=True)
def ref_backward(x, ia, ib, rest, stiff, amp, target, dt, omega, damp, amp_bar):
    """amp_bar = d loss / d amp (written); rolling adjoints of x and v."""
    T = x.shape[0] - 1
    nm = x.shape[1]
    xb = np.empty((nm, 2))
    vb = np.zeros((nm, 2))
    for i in range(nm):
        for c in range(2):
            xb[i, c] = 2.0 * (x[T, i, c] - target[i, c])
    amp_bar[:] = 0.0
    for t in range(T - 1, -1, -1):
        # x[t+1] = x[t] + dt v[t+1];  v[t+1] = damp v[t] + vinc[t] + dt g
        for i in range(nm):
            for c in range(2):
                vb[i, c] += dt * xb[i, c]          # now d/d v[t+1]  (= d/d vinc[t])
        ph = math.sin(omega * t * dt)
        for s in range(ia.shape[0]):
            a, b = ia[s], ib[s]
            d0 = x[t, b, 0] - x[t, a, 0]
            d1 = x[t, b, 1] - x[t, a, 1]
            length = math.sqrt(d0 * d0 + d1 * d1)
            tl = rest[s] * (1.0 + amp[s] * ph)
            cc = stiff[s] * (length - tl) / length * dt      # impulse = cc * d
            fb0 = vb[a, 0] - vb[b, 0]
            fb1 = vb[a, 1] - vb[b, 1]
            ccb = fb0 * d0 + fb1 * d1
            lb = ccb * stiff[s] * dt * tl / (length * length)
            tlb = -ccb * stiff[s] * dt / length
            db0 = cc * fb0 + lb * d0 / length
            db1 = cc * fb1 + lb * d1 / length
            amp_bar[s] += tlb * rest[s] * ph
            xb[b, 0] += db0
            xb[b, 1] += db1
            xb[a, 0] -= db0
            xb[a, 1] -= db1
        for i in range(nm):
            for c in range(2):
                vb[i, c] *= damp


@njit(error_model="numpy", cache=True)
def layout_forward(x, v, v_inc, ia, ib, rest, stiff, amp, target, dt, omega, damp, grav):
    """The reference with difsci's data layout: full histories of x, v and v_inc (v_inc zeroed by the caller)."""
    T = x.shape[0] - 1
    nm = x.shape[1]
    for t in range(T):
        ph = math.sin(omega * t * dt)
        for s in range(ia.shape[0]):
            a, b = ia[s], ib[s]
            d0 = x[t, b, 0] - x[t, a, 0]
            d1 = x[t, b, 1] - x[t, a, 1]
            length = math.sqrt(d0 * d0 + d1 * d1)
            c = stiff[s] * (length - rest[s] * (1.0 + amp[s] * ph)) / length * dt
            v_inc[t, a, 0] += c * d0
            v_inc[t, a, 1] += c * d1
            v_inc[t, b, 0] -= c * d0
            v_inc[t, b, 1] -= c * d1
        for i in range(nm):
            v[t + 1, i, 0] = damp * v[t, i, 0] + v_inc[t, i, 0]
            v[t + 1, i, 1] = damp * v[t, i, 1] + v_inc[t, i, 1] + dt * grav
            x[t + 1, i, 0] = x[t, i, 0] + dt * v[t + 1, i, 0]
            x[t + 1, i, 1] = x[t, i, 1] + dt * v[t + 1, i, 1]
    loss = 0.0
    for i in range(nm):
        for c in range(2):
            e = x[T, i, c] - target[i, c]
            loss += e * e
    return loss


@njit(error_model="numpy", cache=True)
def layout_backward(x, ia, ib, rest, stiff, amp, target, dt, omega, damp, x_bar, v_bar, v_inc_bar, amp_bar):
    """Adjoint into full (T+1, n, 2) adjoint histories (zeroed by the caller), as difsci's Tape fills ``.grad``."""
    T = x.shape[0] - 1
    nm = x.shape[1]
    for i in range(nm):
        for c in range(2):
            x_bar[T, i, c] += 2.0 * (x[T, i, c] - target[i, c])
    for t in range(T - 1, -1, -1):
        for i in range(nm):
            for c in range(2):
                x_bar[t, i, c] += x_bar[t + 1, i, c]
                v_bar[t + 1, i, c] += dt * x_bar[t + 1, i, c]
                v_bar[t, i, c] += damp * v_bar[t + 1, i, c]
                v_inc_bar[t, i, c] += v_bar[t + 1, i, c]
        ph = math.sin(omega * t * dt)
        for s in range(ia.shape[0]):
            a, b = ia[s], ib[s]
            d0 = x[t, b, 0] - x[t, a, 0]
            d1 = x[t, b, 1] - x[t, a, 1]
            length = math.sqrt(d0 * d0 + d1 * d1)
            tl = rest[s] * (1.0 + amp[s] * ph)
            cc = stiff[s] * (length - tl) / length * dt
            fb0 = v_inc_bar[t, a, 0] - v_inc_bar[t, b, 0]
            fb1 = v_inc_bar[t, a, 1] - v_inc_bar[t, b, 1]
            ccb = fb0 * d0 + fb1 * d1
            lb = ccb * stiff[s] * dt * tl / (length * length)
            tlb = -ccb * stiff[s] * dt / length
            db0 = cc * fb0 + lb * d0 / length
            db1 = cc * fb1 + lb * d1 / length
            amp_bar[s] += tlb * rest[s] * ph
            x_bar[t, b, 0] += db0
            x_bar[t, b, 1] += db1
            x_bar[t, a, 0] -= db0
            x_bar[t, a, 1] -= db1


def ring(nm: int = N_MASS):
    ang = np.linspace(0, 2 * np.pi, nm, endpoint=False)
    x0 = np.stack([0.5 + 0.2 * np.cos(ang), 0.6 + 0.2 * np.sin(ang)], 1)
    ia = np.concatenate([np.arange(nm), np.arange(nm)]).astype(np.int32)
    ib = np.concatenate([(np.arange(nm) + 1) % nm, (np.arange(nm) + 2) % nm]).astype(np.int32)
    rest = np.linalg.norm(x0[ib] - x0[ia], axis=1)
    stiff = np.full(2 * nm, 200.0)
    amp = 0.2 * np.sin(1.7 * np.arange(2 * nm))
    target = x0 + np.array([0.1, -0.05])
    return x0, ia, ib, rest, stiff, amp, target


def cases(size: str, peers: dict | None = None) -> list[Case]:
    T = SIZES[size]
    x0, ia, ib, rest, stiff, amp0, tgt0 = ring()
    nm = x0.shape[0]

    # ---- reference
    rx = np.zeros((T + 1, nm, 2))
    rx[0] = x0
    r_amp_bar = np.zeros_like(amp0)

    def ref_fwd():
        return ref_forward(rx, ia, ib, rest, stiff, amp0, tgt0, DT, OMEGA, DAMP, GRAV)

    def ref_fwd_bwd():
        loss = ref_forward(rx, ia, ib, rest, stiff, amp0, tgt0, DT, OMEGA, DAMP, GRAV)
        ref_backward(rx, ia, ib, rest, stiff, amp0, tgt0, DT, OMEGA, DAMP, r_amp_bar)
        return loss, r_amp_bar

    # ---- the reference with difsci's data layout (full histories; adjoints accumulated into zeroed buffers)
    lx = np.zeros((T + 1, nm, 2))
    lx[0] = x0
    lv, lvi = np.zeros_like(lx), np.zeros_like(lx)
    lxb, lvb, lvib = np.zeros_like(lx), np.zeros_like(lx), np.zeros_like(lx)
    lab = np.zeros_like(amp0)

    def layout_fwd():
        lvi[...] = 0.0
        return layout_forward(lx, lv, lvi, ia, ib, rest, stiff, amp0, tgt0, DT, OMEGA, DAMP, GRAV)

    def layout_fwd_bwd():
        loss = layout_fwd()
        for buf in (lxb, lvb, lvib, lab):
            buf[...] = 0.0
        layout_backward(lx, ia, ib, rest, stiff, amp0, tgt0, DT, OMEGA, DAMP, lxb, lvb, lvib, lab)
        return loss, lab

    # ---- difsci
    def state():
        X = np.zeros((T + 1, nm, 2))
        X[0] = x0
        return (ds.array(X, dtype=ds.vec2, requires_grad=True),
                ds.zeros((T + 1, nm), dtype=ds.vec2, requires_grad=True),
                ds.zeros((T + 1, nm), dtype=ds.vec2, requires_grad=True),
                ds.array(amp0, requires_grad=True), ds.zeros((), requires_grad=True))

    target = ds.array(tgt0, dtype=ds.vec2)
    st_l = state()
    st_s = state()

    def launches(st):
        x, v, v_inc, amp, loss = st
        for t in range(T):
            apply_springs(x, v_inc, ia, ib, rest, stiff, amp, t, DT, OMEGA)
            advance(x, v, v_inc, t, DT, DAMP, GRAV)
        final_loss(x, target, loss)

    def reset(st, grads):
        _, _, v_inc, _, loss = st
        v_inc.fill(0.0)          # accumulated into by the springs
        loss.fill(0.0)
        if grads:
            for a in st:
                a.zero_grad()

    def ds_fwd():
        reset(st_l, False)
        launches(st_l)
        return float(st_l[4].numpy())

    def ds_fwd_bwd():
        reset(st_l, True)
        with ds.Tape() as tape:
            launches(st_l)
        tape.backward(st_l[4])
        return float(st_l[4].numpy()), st_l[3].grad

    def one(st):
        x, v, v_inc, amp, loss = st
        simulate(x, v, v_inc, ia, ib, rest, stiff, amp, target, loss, DT, OMEGA, DAMP, GRAV)

    def dss_fwd():
        reset(st_s, False)
        one(st_s)
        return float(st_s[4].numpy())

    def dss_fwd_bwd():
        reset(st_s, True)
        with ds.Tape() as tape:
            one(st_s)
        tape.backward(st_s[4])
        return float(st_s[4].numpy()), st_s[3].grad

    # ---- what-if: difsci's generated code for `simulate` with serial loops and plain adds
    st_w = state()
    pair = []

    def whatif_fwd_bwd():
        x, v, v_inc, amp, loss = st_w
        if not pair:
            one(st_w)   # make sure this specialisation (and its adjoint) exist
            with ds.Tape() as tape:
                one(st_w)
            tape.backward(loss)
            names = {"x": x, "v": v, "v_inc": v_inc, "ia": ia, "ib": ib, "rest": rest, "stiff": stiff, "amp": amp,
                     "target": target, "loss": loss, "dt": DT, "omega": OMEGA, "damp": DAMP, "grav": GRAV}
            pair.extend(whatif.forward_and_adjoint(simulate, names))
        reset(st_w, True)
        pair[0]()
        loss.grad.fill(1.0)
        pair[1]()
        return float(loss.numpy()), amp.grad

    def verify_fwd(res):
        for k, got in res.items():
            assert_close(f"{k}: loss", got, res["numba"], rtol=1e-10)

    def verify_fb(res):
        want = res["numba"]
        assert np.max(np.abs(want[1])) > 1e-8, "degenerate case: zero gradient"
        for k, got in res.items():
            assert_close(f"{k}: loss", got[0], want[0], rtol=1e-10)
            assert_close(f"{k}: d loss / d amp", got[1], want[1], rtol=1e-8)

    # ---- where the backward time goes (no results to compare: the parts are verified above)
    st_p = state()
    reset(st_p, False)
    tape_p = ds.Tape()
    with tape_p:
        one(st_p)

    def dss_zero():
        for a in st_p:
            a.zero_grad()

    def dss_bwd():
        dss_zero()
        tape_p.backward(st_p[4])

    def ref_bwd():
        ref_backward(rx, ia, ib, rest, stiff, amp0, tgt0, DT, OMEGA, DAMP, r_amp_bar)

    parts = {"numba backward": ref_bwd, "difsci serial: zero_grad + backward": dss_bwd,
             "difsci serial: zero_grad only": dss_zero}

    label = f"5 mass-spring {nm}m/{len(ia)}s x {T} f64"
    fwd = {"numba": ref_fwd, "difsci": ds_fwd, "difsci serial": dss_fwd, "numba, difsci's layout": layout_fwd}
    fb = {"numba": ref_fwd_bwd, "difsci": ds_fwd_bwd, "difsci serial": dss_fwd_bwd,
          "numba, difsci's layout": layout_fwd_bwd}
    if size != "quick":      # diagnostics compile without a cache: left out of --quick
        fb["what-if: serial codegen"] = whatif_fwd_bwd
    layout_note = "same arrays as the difsci program: x, v, v_inc histories (+ their adjoints)"
    notes_f = {"numba": "serial njit, time loop inside", "difsci": f"{2 * T + 1} launches",
               "difsci serial": "one ds.serial launch", "numba, difsci's layout": layout_note}
    notes_fb = {"difsci": f"Tape, {2 * (2 * T + 1)} launches", "difsci serial": "Tape, 2 launches",
                "what-if: serial codegen": "difsci's source, prange->range, atomics->+=",
                "numba, difsci's layout": layout_note}
    # Each sample times ``number`` calls in a row: with one call per sample, every sub-millisecond run
    # started with caches the other implementations had just filled (the per-step variant alone touches
    # ~4 MB of histories), which measured the cold start more than the run itself (difsci serial fwd+bwd
    # 2.6 ms median in the harness vs 1.56 ms back to back, the reference 1.14 vs 1.00 ms).
    number = 1 if size == "tiny" else 5
    return [
        Case(label, "forward", fwd, ref="numba", target=None, verify=verify_fwd, notes=notes_f, number=number),
        Case(label, "fwd+bwd", fb, ref="numba", target=1.5, verify=verify_fb, target_impls=("difsci serial",),
             notes=notes_fb, number=number),
        Case(label, "backward parts", parts, ref="numba backward", target=None, verify=None, number=number),
    ]
