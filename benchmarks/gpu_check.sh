#!/usr/bin/env bash
# The cuda backend on a real NVIDIA GPU (issue 4): one prepared run, ~5 minutes.
#
#   bash benchmarks/gpu_check.sh                 # install, CUDA tests for real, GPU-size benchmarks
#   bash benchmarks/gpu_check.sh --bench-only    # the benchmarks only
#   DIFSCI_BENCH_BACKEND=cpu WAVE_T=100 MS_T=100 SAXPY_N=10000000 bash benchmarks/gpu_check.sh --bench-only
#                                                # the same workloads on the CPU backend (the baseline)
#
# Sizes (environment): WAVE_N=1024 WAVE_T=1000 (wave equation, N^2 grid, T steps, forward +
# gradient), MS_R=4096 MS_T=1000 (4096 independent 20-mass / 40-spring robots, T steps, gradient
# w.r.t. the actuation amplitudes), SAXPY_N=100000000 (float32 saxpy + sum of squares, gradient).
# Every timing is the best of REPS (3) after one warm-up call (which compiles); per-step
# numbers make runs of different T comparable. Results: a table on stdout and, when $OUT is
# set, $OUT/gpu_check.json (record them in benchmarks/RESULTS.md with the GPU's name).
#
# Works offline (the device machines reach no package index): numba and numba-cuda must already
# be installed (they are on this workplace's GPU image); difsci is installed without deps.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONUNBUFFERED=1
export DIFSCI_CACHE_DIR="${DIFSCI_CACHE_DIR:-/tmp/difsci-gpu-check/difsci}"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-/tmp/difsci-gpu-check/numba}"
mkdir -p "$DIFSCI_CACHE_DIR" "$NUMBA_CACHE_DIR" && chmod 700 "$DIFSCI_CACHE_DIR"
# a dry run of this script without a GPU: DIFSCI_GPU_CHECK_SIM=1 (numba's simulator, tiny sizes only)
if [[ "${DIFSCI_GPU_CHECK_SIM:-0}" == "1" ]]; then export NUMBA_ENABLE_CUDASIM=1; else unset NUMBA_ENABLE_CUDASIM; fi
PY="${PYTHON:-python3}"

echo "== install"
if ! "$PY" -c "import difsci, os, sys; sys.exit(not os.path.abspath(difsci.__file__).startswith(os.getcwd()))" 2>/dev/null; then
  "$PY" -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2 || true
  "$PY" -c "import difsci" 2>/dev/null || export PYTHONPATH="$PWD:${PYTHONPATH:-}"
fi

echo "== environment"
"$PY" - <<'EOF'
import platform, numba, numpy
from numba import cuda
print("python", platform.python_version(), "| numpy", numpy.__version__, "| numba", numba.__version__,
      "| numba.cuda:", getattr(cuda, "implementation", "?"))
try:
    import importlib.metadata as md
    print("numba-cuda", md.version("numba-cuda"))
except Exception:
    print("numba-cuda not installed (numba's built-in CUDA target)")
print("cuda.is_available():", cuda.is_available())
if cuda.is_available() and hasattr(cuda, "get_current_device"):
    d = cuda.get_current_device()
    print("GPU:", d.name.decode() if isinstance(d.name, bytes) else d.name, "cc", d.compute_capability,
          "SMs", d.MULTIPROCESSOR_COUNT)
EOF
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true

rc=0
if [[ "${1:-}" != "--bench-only" ]]; then
  echo "== tests/test_cuda_sim.py on the GPU (DIFSCI_CUDA_TESTS=real) and the PTX check"
  DIFSCI_CUDA_TESTS=real timeout 600 "$PY" -m pytest -q -p no:cacheprovider -rs tests/test_cuda_sim.py || rc=$?
fi

echo "== benchmarks"
BENCH="$(mktemp -d)/gpu_bench.py"          # kernels must live in a file: difsci parses their source
cat > "$BENCH" <<'EOF'
import json, math, os, time
import numpy as np
import difsci as ds

backend = os.environ.get("DIFSCI_BENCH_BACKEND", "cuda")
ds.init(backend=backend)
REPS = int(os.environ.get("REPS", 3))
if backend == "cuda":
    from numba import cuda
    sync = cuda.synchronize
else:
    def sync():
        pass
rows, info = [], {"backend": backend}


def bench(name, fn, steps=1, note=""):
    t0 = time.perf_counter(); fn(); sync(); first = time.perf_counter() - t0     # compiles
    ts = []
    for _ in range(REPS):
        t0 = time.perf_counter(); out = fn(); sync(); ts.append(time.perf_counter() - t0)
    best = min(ts)
    rows.append(dict(name=name, first_s=round(first, 3), best_s=round(best, 5),
                     per_step_ms=round(1e3 * best / steps, 4), value=out, note=note))
    print(f"{name:44s} first {first:8.3f} s   best {best:9.5f} s   {1e3 * best / steps:9.4f} ms/step   {out}",
          flush=True)


# ------------------------------------------------------------ wave equation
@ds.kernel
def wave_sim(h: ds.f64[:, :, :], target: ds.f64[:, :], loss: ds.f64[()], k: float):
    T, n, m = h.shape[0], h.shape[1], h.shape[2]
    for t in ds.serial(range(1, T - 1)):
        for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
            lap = h[t, i + 1, j] + h[t, i - 1, j] + h[t, i, j + 1] + h[t, i, j - 1] - 4.0 * h[t, i, j]
            h[t + 1, i, j] = 2.0 * h[t, i, j] - h[t - 1, i, j] + k * lap
    for i, j in ds.ndrange(n, m):
        loss[None] += (h[T - 1, i, j] - target[i, j]) ** 2


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


def wave(n, T, K=0.1):
    from difsci.lang.backends import devices
    xs = np.linspace(0, 1, n)
    bump = np.exp(-((xs[:, None] - 0.5) ** 2 + (xs[None, :] - 0.45) ** 2) / 0.01)
    target = ds.array(0.3 * np.exp(-((xs[:, None] - 0.3) ** 2 + (xs[None, :] - 0.6) ** 2) / 0.02))
    h = ds.zeros((T, n, n), requires_grad=True)
    devices.copy_into(h[0:2].data, np.stack([bump, bump]))
    loss = ds.zeros((), requires_grad=True)

    def fwd():
        loss.fill(0.0)
        wave_sim(h, target, loss, K)
        return float(loss.numpy())

    def fwd_bwd(per_step=False):
        h.zero_grad(); loss.zero_grad(); loss.fill(0.0)
        with ds.Tape() as tape:
            if per_step:
                for t in range(1, T - 1):
                    wave_step(h, t, K)
                wave_loss(h, target, loss)
            else:
                wave_sim(h, target, loss, K)
        tape.backward(loss)
        g = h.grad[0].numpy()
        return float(loss.numpy()), float(np.abs(g).sum())

    bench(f"wave {n}^2 x {T} steps: forward (ds.serial)", fwd, T - 2)
    bench(f"wave {n}^2 x {T} steps: forward+gradient (ds.serial)", fwd_bwd, T - 2)
    bench(f"wave {n}^2 x {T} steps: fwd+grad, a launch per step", lambda: fwd_bwd(True), T - 2)
    del h


# ---------------------------------------------------- mass-spring robots
@ds.kernel
def ms_simulate(x: ds.vec2[:, :], v: ds.vec2[:, :], v_inc: ds.vec2[:, :], ia: ds.i32[:], ib: ds.i32[:],
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


def robots(R, T, M=20):
    rng = np.random.default_rng(0)
    ang = np.linspace(0, 2 * np.pi, M, endpoint=False)
    ring = np.stack([0.1 * np.cos(ang), 0.1 * np.sin(ang) + 0.3], axis=1)
    x0 = np.zeros((T + 1, R * M, 2))
    x0[0] = np.tile(ring, (R, 1)) + np.repeat(np.arange(R)[:, None] * np.array([[1.0, 0.0]]), M, axis=0)
    ia, ib = [], []
    for r in range(R):
        for k in (1, 2):
            for i in range(M):
                ia.append(r * M + i)
                ib.append(r * M + (i + k) % M)
    ia, ib = np.array(ia, np.int32), np.array(ib, np.int32)
    rest = np.linalg.norm(x0[0, ib] - x0[0, ia], axis=1)
    x = ds.array(x0, dtype=ds.vec2, requires_grad=True)
    v = ds.zeros((T + 1, R * M), dtype=ds.vec2, requires_grad=True)
    vinc = ds.zeros((T + 1, R * M), dtype=ds.vec2, requires_grad=True)
    args = [ds.array(ia), ds.array(ib), ds.array(rest), ds.array(np.full(len(ia), 3e4))]
    amp = ds.array(0.1 * rng.standard_normal(len(ia)), requires_grad=True)
    target = ds.array(x0[0] + np.array([0.2, 0.0]), dtype=ds.vec2)
    loss = ds.zeros((), requires_grad=True)

    def fwd_bwd():
        for a in (x, v, vinc, amp, loss):
            a.zero_grad()
        v.fill(0.0); vinc.fill(0.0); loss.fill(0.0)
        with ds.Tape() as tape:
            ms_simulate(x, v, vinc, *args, amp, target, loss, 2e-3, 10.0, 0.999, -9.8)
        tape.backward(loss)
        return float(loss.numpy()), float(np.abs(amp.grad.numpy()).sum())

    bench(f"mass-spring {R} robots x {T} steps: fwd+grad", fwd_bwd, T)


# ------------------------------------------------------------------ saxpy
@ds.kernel
def saxpy_sumsq(a: ds.f32[()], x: ds.f32[:], y: ds.f32[:], z: ds.f32[:], loss: ds.f32[()]):
    for i in range(x.shape[0]):
        v = a[None] * x[i] + y[i]
        z[i] = v
        loss[None] += v * v


def saxpy(n):
    rng = np.random.default_rng(0)
    a = ds.array(np.float32(0.75), requires_grad=True)
    x = ds.array(rng.uniform(-1, 1, n).astype(np.float32), requires_grad=True)
    y = ds.array(rng.uniform(-1, 1, n).astype(np.float32))
    z = ds.zeros(n, dtype=np.float32, requires_grad=True)
    loss = ds.zeros((), dtype=np.float32, requires_grad=True)

    def fwd():
        loss.fill(0.0)
        saxpy_sumsq(a, x, y, z, loss)
        return float(loss.numpy())

    def fwd_bwd():
        for t in (a, x, z, loss):
            t.zero_grad()
        loss.fill(0.0)
        with ds.Tape() as tape:
            saxpy_sumsq(a, x, y, z, loss)
        tape.backward(loss)
        return float(loss.numpy()), float(a.grad.numpy())

    bench(f"saxpy+sumsq f32 n={n}: forward", fwd)
    bench(f"saxpy+sumsq f32 n={n}: fwd+grad", fwd_bwd)


for name, run in (("wave", lambda: wave(int(os.environ.get("WAVE_N", 1024)), int(os.environ.get("WAVE_T", 1000)))),
                  ("mass-spring", lambda: robots(int(os.environ.get("MS_R", 4096)), int(os.environ.get("MS_T", 1000)))),
                  ("saxpy", lambda: saxpy(int(os.environ.get("SAXPY_N", 100_000_000))))):
    try:
        run()
    except Exception as e:          # one failure must not hide the other numbers
        import traceback
        traceback.print_exc()
        rows.append(dict(name=name, error=f"{type(e).__name__}: {e}"))

if os.environ.get("OUT"):
    with open(os.path.join(os.environ["OUT"], "gpu_check.json"), "w") as f:
        json.dump(dict(info, rows=rows), f, indent=1, default=str)
raise SystemExit(1 if any("error" in r for r in rows) else 0)
EOF
"$PY" "$BENCH" || rc=$?
echo "== done (rc $rc)"
exit $rc
