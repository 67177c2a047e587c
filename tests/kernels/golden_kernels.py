"""Kernels whose generated source is kept as golden files (tests/golden/)."""
import difsci as ds


@ds.kernel
def saxpy(x: ds.f32[:], y: ds.f32[:], out: ds.f32[:], a: float):
    for i in range(x.shape[0]):
        out[i] = a * x[i] + y[i]


@ds.kernel
def carried(b: ds.f64[:, :], a: ds.f64[:], out: ds.f64[:]):
    for i in range(out.shape[0]):
        s = 0.0
        for j in range(b.shape[1]):
            s = s * a[i] + b[i, j]
        out[i] = ds.tanh(s)


@ds.kernel
def wave(h: ds.f64[:, :, :], c: float):
    n, m = h.shape[1], h.shape[2]
    for t in ds.serial(range(1, h.shape[0] - 1)):
        for i, j in ds.ndrange((1, n - 1), (1, m - 1)):
            lap = h[t, i + 1, j] + h[t, i - 1, j] + h[t, i, j + 1] + h[t, i, j - 1] - 4.0 * h[t, i, j]
            h[t + 1, i, j] = 2.0 * h[t, i, j] - h[t - 1, i, j] + c * lap


@ds.kernel
def sq_sum(x: ds.f64[:], loss: ds.f64[()]):
    for i in range(x.shape[0]):
        loss[None] += x[i] * x[i]


@ds.func
def spring(xa: ds.vec2, xb: ds.vec2, rest: float) -> float:
    d = xb - xa
    return (ds.norm(d) - rest) ** 2


@ds.kernel
def scatter(idx: ds.i64[:], w: ds.f64[:], out: ds.f64[:]):
    for p in range(idx.shape[0]):
        out[idx[p]] += w[p] * 0.1


@ds.kernel
def shifted(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = x[i + 1]


@ds.kernel
def loop_in_if(x: ds.f64[:], flag: int):
    if flag > 0:
        for i in range(x.shape[0]):      # inside an `if`: a serial loop
            x[i] = i * 2.0
    for i in range(x.shape[0]):          # directly in the body: parallel
        x[i] += 1.0
