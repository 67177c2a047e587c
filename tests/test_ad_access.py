"""The global data access rule (API.md §5): each statically visible
violation raises ds.AutodiffError at the right line when the adjoint is
built; each legal pattern does not (and gives the right gradient)."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import difsci as ds

from gradcheck import py_backend, tape_check  # noqa: F401

RNG = np.random.default_rng(3)


def line_of(kernel, marker: str) -> int:
    """Absolute line number of the first line of ``kernel``'s source containing ``marker``."""
    lines, start = inspect.getsourcelines(kernel.src.pyfn)
    for k, text in enumerate(lines):
        if marker in text:
            return start + k
    raise AssertionError(f"{marker!r} not in the source")


def adjoint_error(kernel, *args) -> ds.AutodiffError:
    """The AutodiffError raised building ``kernel``'s adjoint for ``args`` (via the Tape)."""
    seeds = [a for a in args if isinstance(a, ds.Array) and a.requires_grad]
    with ds.Tape() as tape:
        kernel(*args)
    out = seeds[-1]
    with pytest.raises(ds.AutodiffError) as ei:
        tape.backward(out, np.ones(out.data.shape))
    return ei.value


def assert_at(err, kernel, marker, what):
    msg = str(err)
    line = line_of(kernel, marker)
    path = inspect.getsourcefile(kernel.src.pyfn)
    assert f"{path}:{line}:" in msg, msg
    assert what in msg, msg
    assert kernel.__name__ in msg, msg
    assert "hint:" in msg, msg


def arr(n, grad=True):
    return ds.array(RNG.uniform(-1, 1, n), requires_grad=grad)


# ------------------------------------------------------------- violations
@ds.kernel
def square_in_place(x: ds.f64[:]):
    for i in range(x.shape[0]):
        x[i] = x[i] * x[i]          # MARK


def test_overwrite_after_read(py_backend):
    err = adjoint_error(square_in_place, arr(4))
    assert_at(err, square_in_place, "# MARK", "`x[i]` is overwritten after it was read")


@ds.kernel
def overwrite_later_statement(x: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        y[i] = ds.sin(x[i])
    for i in range(x.shape[0]):
        x[i] = 0.5 * y[i]           # MARK


def test_overwrite_in_a_later_loop(py_backend):
    err = adjoint_error(overwrite_later_statement, arr(4), arr(4))
    assert_at(err, overwrite_later_statement, "# MARK", "overwritten")


@ds.kernel
def accumulate_after_read(x: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        y[i] = x[i] * 2.0
        x[i] += 1.0                 # MARK


def test_accumulate_after_read(py_backend):
    err = adjoint_error(accumulate_after_read, arr(4), arr(4))
    assert_at(err, accumulate_after_read, "# MARK", "accumulated into")


@ds.kernel
def carried_in_serial_loop(x: ds.f64[:], y: ds.f64[:], tmp: ds.f64[:]):
    for i in range(x.shape[0]):
        for j in range(4):
            tmp[i] = x[i] * j       # MARK
            y[i] += tmp[i] * tmp[i]


def test_loop_carried_overwrite_in_serial_loop(py_backend):
    err = adjoint_error(carried_in_serial_loop, arr(3), arr(3), arr(3))
    assert_at(err, carried_in_serial_loop, "# MARK", "overwritten in a later iteration")


@ds.kernel
def carried_in_while(x: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        k = 0
        while k < 3:
            y[i] = y[i] * x[i]      # MARK
            k += 1


def test_overwrite_in_while_loop(py_backend):
    err = adjoint_error(carried_in_while, arr(3), arr(3))
    assert_at(err, carried_in_while, "# MARK", "overwritten")


@ds.kernel
def carried_in_time_loop(x: ds.f64[:], w: ds.f64[:], tmp: ds.f64[:], out: ds.f64[:, :]):
    for t in ds.serial(range(out.shape[0])):
        for i in range(x.shape[0]):
            tmp[i] = x[i] * w[t]            # MARK: the next step overwrites what this step read
        for i in range(x.shape[0]):
            out[t, i] = tmp[i] * tmp[i]


def test_loop_carried_overwrite_in_ds_serial(py_backend):
    err = adjoint_error(carried_in_time_loop, arr(3), arr(4), arr(3), ds.zeros((4, 3), requires_grad=True))
    assert_at(err, carried_in_time_loop, "# MARK", "overwritten in a later iteration")


@ds.kernel
def in_place_time_loop(u: ds.f64[:], c: ds.f64[:]):
    for t in ds.serial(range(5)):
        for i in range(u.shape[0]):
            u[i] = u[i] + c[0] * ds.sin(u[i])     # MARK


def test_in_place_update_in_ds_serial(py_backend):
    err = adjoint_error(in_place_time_loop, arr(4), arr(1))
    assert_at(err, in_place_time_loop, "# MARK", "overwritten")


@ds.kernel
def read_in_func_then_write(x: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        y[i] = peek(x, i)
        x[i] = 1.0                  # MARK


@ds.func
def peek(a: ds.f64[:], i: int) -> float:
    return a[i] * 2.0


def test_violation_through_a_func(py_backend):
    err = adjoint_error(read_in_func_then_write, arr(3), arr(3))
    assert_at(err, read_in_func_then_write, "# MARK", "overwritten")


def test_violation_reported_by_adjoint_source(py_backend):
    square_in_place(arr(3))
    with pytest.raises(ds.AutodiffError, match="overwritten"):
        square_in_place.adjoint.source  # noqa: B018


# ---------------------------------------------------------- legal patterns
@ds.kernel
def time_axis(x: ds.f64[:, :], v: ds.f64[:, :], k: ds.f64[:], dt: float):
    for t in ds.serial(range(x.shape[0] - 1)):
        for i in range(x.shape[1]):
            v[t + 1, i] = v[t, i] - dt * k[0] * x[t, i]
        for i in range(x.shape[1]):
            x[t + 1, i] = x[t, i] + dt * v[t + 1, i]      # write, then read: legal


@ds.kernel
def sum_sq(x: ds.f64[:, :], out: ds.f64[()]):
    for i, j in ds.ndrange(x.shape[0], x.shape[1]):
        out[None] += x[i, j] * x[i, j]


def test_time_axis_is_legal(py_backend):
    def build(k, x0):
        x = ds.zeros((8, 3), requires_grad=True)
        v = ds.zeros((8, 3), requires_grad=True)
        x.numpy()[0] = x0.numpy()
        time_axis(x, v, k, 0.1)
        out = ds.zeros((), requires_grad=True)
        sum_sq(x, out)
        return out
    tape_check(build, {"k": np.array([2.0]), "x0": RNG.uniform(-1, 1, 3)}, wrt=["k"])


@ds.kernel
def accumulate_then_read(x: ds.f64[:], acc: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        for j in range(3):
            acc[i] += x[i] * j              # += inside a loop, never read there
    for i in range(x.shape[0]):
        y[i] = acc[i] * acc[i]              # read once the loop has finished


@ds.kernel
def total(y: ds.f64[:], out: ds.f64[()]):
    for i in range(y.shape[0]):
        out[None] += y[i]


def test_accumulate_then_read_is_legal(py_backend):
    def build(x):
        acc = ds.zeros(x.shape, requires_grad=True)
        y = ds.zeros(x.shape, requires_grad=True)
        accumulate_then_read(x, acc, y)
        out = ds.zeros((), requires_grad=True)
        total(y, out)
        return out
    tape_check(build, {"x": RNG.uniform(-1, 1, 4)})


@ds.kernel
def write_then_read(x: ds.f64[:], tmp: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        tmp[i] = ds.exp(x[i])
        y[i] = tmp[i] * x[i]
        for j in range(3):
            y[i] += tmp[i] * j              # reading it again in a loop is fine


def test_write_then_read_is_legal(py_backend):
    def build(x):
        tmp = ds.zeros(x.shape, requires_grad=True)
        y = ds.zeros(x.shape, requires_grad=True)
        write_then_read(x, tmp, y)
        out = ds.zeros((), requires_grad=True)
        total(y, out)
        return out
    tape_check(build, {"x": RNG.uniform(-1, 1, 4)})


@ds.kernel
def time_loop_scratch_per_step(x: ds.f64[:], w: ds.f64[:], tmp: ds.f64[:, :], out: ds.f64[:, :]):
    for t in ds.serial(range(out.shape[0])):
        for i in range(x.shape[0]):
            tmp[t, i] = x[i] * w[t]          # a time axis on the scratch array: legal
        for i in range(x.shape[0]):
            out[t, i] = tmp[t, i] * tmp[t, i]


def test_time_axis_on_scratch_is_legal(py_backend):
    def build(x, w):
        tmp = ds.zeros((4, 3), requires_grad=True)
        out = ds.zeros((4, 3), requires_grad=True)
        time_loop_scratch_per_step(x, w, tmp, out)
        o = ds.zeros((), requires_grad=True)
        sum_sq(out, o)
        return o
    tape_check(build, {"x": RNG.uniform(-1, 1, 3), "w": RNG.uniform(-1, 1, 4)})


# ------------------------------------------------- run-time validation
@ds.kernel
def double(x: ds.f64[:], y: ds.f64[:]):
    for i in range(x.shape[0]):
        y[i] = x[i] * 2.0


@ds.kernel
def reset(x: ds.f64[:]):
    for i in range(x.shape[0]):
        x[i] = 1.0                  # MARK


@ds.kernel
def bump(x: ds.f64[:]):
    for i in range(x.shape[0]):
        x[i] += 1.0                 # MARK


def test_validate_catches_overwrite_by_a_later_launch(py_backend):
    x = arr(3)
    y = ds.zeros(3, requires_grad=True)
    with ds.Tape(validate=True):
        double(x, y)
        with pytest.raises(ds.AutodiffError) as ei:
            reset(x)
    assert_at(ei.value, reset, "# MARK", "`x[0]` is overwritten after it was read")
    assert "`double` read it" in str(ei.value)
    # without validation the launch is not checked (only what is visible statically is)
    with ds.Tape():
        double(x, y)
        reset(x)


@pytest.mark.parametrize("backend", ["python", "cpu"])
def test_validate_catches_accumulate_by_a_later_launch_and_debug_mode(backend):
    from difsci.config import config
    old = (config.backend, config.debug)
    ds.init(backend=backend, debug=True)
    try:
        x = arr(3)
        y = ds.zeros(3, requires_grad=True)
        with ds.Tape():                       # debug=True validates every tape
            double(x, y)
            with pytest.raises(ds.AutodiffError) as ei:
                bump(x)
        assert_at(ei.value, bump, "# MARK", "accumulated into after it was read")
    finally:
        config.backend, config.debug = old


@ds.kernel
def neighbour_update(x: ds.f64[:, :]):
    for t in ds.serial(range(x.shape[0] - 1)):
        for i in range(x.shape[1]):
            x[t + 1, i] = x[t, i] * 0.5
        for i in range(x.shape[1]):
            x[t + 1, i] += 0.5 * x[t + 1, (i + 1) % x.shape[1]]     # MARK: reads what another iteration updates


def test_validate_catches_what_static_checks_cannot(py_backend):
    h = ds.zeros((3, 4), requires_grad=True)
    with ds.Tape():
        neighbour_update(h)                   # not visible statically: different index expressions
    with ds.Tape(validate=True):
        with pytest.raises(ds.AutodiffError) as ei:
            neighbour_update(h)
    assert_at(ei.value, neighbour_update, "# MARK", "accumulated into after it was read")


@ds.kernel
def wave_like(h: ds.f64[:, :], c: ds.f64[:]):
    for t in ds.serial(range(1, h.shape[0] - 1)):
        for i in range(1, h.shape[1] - 1):
            h[t + 1, i] = 2.0 * h[t, i] - h[t - 1, i] + c[0] * (h[t, i + 1] - 2.0 * h[t, i] + h[t, i - 1])


def test_validate_accepts_legal_programs(py_backend):
    x = RNG.uniform(-1, 1, 4)

    def build(x):
        acc = ds.zeros(x.shape, requires_grad=True)
        y = ds.zeros(x.shape, requires_grad=True)
        accumulate_then_read(x, acc, y)
        tmp = ds.zeros(x.shape, requires_grad=True)
        z = ds.zeros(x.shape, requires_grad=True)
        write_then_read(y, tmp, z)
        out = ds.zeros((), requires_grad=True)
        total(z, out)
        total(y, out)                         # accumulating into a loss twice, never read in between
        h = ds.zeros((6, 5), requires_grad=True)
        h.numpy()[0:2, 1:4] = x[:3]
        wave_like(h, np.array([0.3]))
        sum_sq(h, out)
        return out
    inputs = {"x": ds.array(x, requires_grad=True)}
    with ds.Tape(validate=True) as tape:
        out = build(**inputs)
    tape.backward(out)
    with ds.Tape() as tape2:
        inputs2 = {"x": ds.array(x, requires_grad=True)}
        out2 = build(**inputs2)
    tape2.backward(out2)
    assert float(out.numpy()) == pytest.approx(float(out2.numpy()), rel=1e-14)
    np.testing.assert_allclose(inputs["x"].grad.numpy(), inputs2["x"].grad.numpy(), rtol=1e-14)


def test_validate_views_share_history(py_backend):
    base = ds.array(RNG.uniform(-1, 1, 6), requires_grad=True)
    y = ds.zeros(3, requires_grad=True)
    with ds.Tape(validate=True):
        double(base[0:3], y)
        reset(base[3:6])                      # other elements: fine
        with pytest.raises(ds.AutodiffError, match="overwritten"):
            reset(base[2:5])                  # base[2] was read through the first view


@ds.kernel
def matmul_then_overwrite(a: ds.f64[:, :], b: ds.f64[:, :], out: ds.f64[:, :]):
    ds.matmul(a, b, out)
    for i in range(a.shape[0]):
        a[i, 0] = 0.0               # MARK: ds.matmul read all of a


@ds.kernel
def read_then_matmul(a: ds.f64[:, :], b: ds.f64[:, :], out: ds.f64[:, :], y: ds.f64[:]):
    for i in range(out.shape[0]):
        y[i] = out[i, 0] * 2.0
    ds.matmul(a, b, out)            # MARK


def test_matmul_access_rules(py_backend):
    a = ds.array(RNG.uniform(-1, 1, (3, 2)), requires_grad=True)
    b = ds.array(RNG.uniform(-1, 1, (2, 2)), requires_grad=True)
    out = ds.zeros((3, 2), requires_grad=True)
    err = adjoint_error(matmul_then_overwrite, a, b, out)
    assert_at(err, matmul_then_overwrite, "# MARK", "`a[i, 0]` is overwritten")
    err = adjoint_error(read_then_matmul, a, b, out, ds.zeros(3, requires_grad=True))
    assert_at(err, read_then_matmul, "# MARK", "`out` is accumulated into (ds.matmul) after it was read")


# ------------------------------------------------- races inside one parallel loop
@ds.kernel
def set_and_shifted_add(x: ds.f64[:, :], y: ds.f64[:, :]):
    for i, j in ds.ndrange(x.shape[0], (1, x.shape[1])):
        if j > 1:
            s = 0.3 * x[i, j - 1]
            y[i, j] += s
            y[i, j - 1] += 0.1 * s
        else:
            y[i, j] = 0.5 * x[i, j]  # MARK


@ds.kernel
def two_sets_one_element(x: ds.f64[:], y: ds.f64[:]):
    for i in range(1, x.shape[0]):
        y[i] = x[i]                 # MARK
        y[i - 1] = 2.0 * x[i]


def test_race_between_iterations_of_a_parallel_loop(py_backend):
    """Iteration (i, 1) overwrites y[i, 1], iteration (i, 2) adds to it: the forward's result (and the
    gradient) depend on the order; found by the random-stencil test, whose finite differences disagreed."""
    err = adjoint_error(set_and_shifted_add, ds.array(RNG.uniform(-1, 1, (3, 4)), requires_grad=True),
                        ds.zeros((3, 4), requires_grad=True))
    assert_at(err, set_and_shifted_add, "# MARK", "the result depends on the order the iterations run in")
    err = adjoint_error(two_sets_one_element, arr(4), arr(4))
    assert_at(err, two_sets_one_element, "# MARK", "is overwritten")


@ds.kernel
def same_element_set_then_add(x: ds.f64[:], y: ds.f64[:], perm: ds.i32[:], z: ds.f64[:]):
    for i in range(x.shape[0]):
        y[i] = x[i] * x[i]
        y[i] += 1.0                 # the same element, the same iteration
        z[perm[i]] = 3.0 * x[i]     # through an index array: not judged (a permutation is fine)


@ds.kernel
def sumsq_into(y: ds.f64[:], out: ds.f64[()]):
    for i in range(y.shape[0]):
        out[None] += y[i] * y[i]


def test_set_and_add_of_one_iterations_element_and_permutations_are_legal(py_backend):
    perm = np.array([2, 0, 3, 1], dtype=np.int32)

    def loss(x):
        y = ds.zeros(4, requires_grad=True)
        z = ds.zeros(4, requires_grad=True)
        same_element_set_then_add(x, y, perm, z)
        out = ds.zeros((), requires_grad=True)
        sumsq_into(y, out)
        sumsq_into(z, out)
        return out
    tape_check(loss, {"x": RNG.uniform(-1, 1, 4)})
