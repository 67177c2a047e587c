"""difsci.nn: networks, derivative streams, optimizers, PINNs (API.md §7–8)."""
import numpy as np
import pytest
import sympy as sp

import difsci as ds


def numpy_mlp(net, p, x):
    h = x
    for k, ((w, b), fi, fo) in enumerate(zip(net.offsets, net.sizes[:-1], net.sizes[1:])):
        h = h @ p[w:b].reshape(fi, fo) + p[b:b + fo]
        if k < len(net.offsets) - 1:
            h = np.tanh(h)
    return h


@pytest.fixture(params=["python", "cpu"])
def backend(request):
    ds.init(backend=request.param)
    yield request.param
    ds.init(backend="cpu")


def test_forward_and_layout(backend):
    net = ds.nn.MLP([3, 4, 2], activation="tanh", seed=1)
    x = np.random.default_rng(0).normal(size=(5, 3))
    p = net.flat_parameters().numpy()
    np.testing.assert_allclose(net(x).numpy(), numpy_mlp(net, p, x), rtol=1e-12, atol=1e-12)
    W0, b0, W1, b1 = net.parameters()
    assert W0.shape == (3, 4) and b0.shape == (4,) and W1.shape == (4, 2) and b1.shape == (2,)
    assert np.shares_memory(W0.numpy(), p) and np.shares_memory(W1.grad.numpy(), net.flat_parameters().grad.numpy())
    np.testing.assert_array_equal(W0.numpy().ravel(), p[:12])


def test_weight_gradient_matches_finite_differences(backend):
    net = ds.nn.MLP([2, 6, 6, 1], activation="tanh", seed=2)
    x = np.random.default_rng(1).normal(size=(9, 2))
    target = np.random.default_rng(2).normal(size=(9, 1))
    flat = net.flat_parameters()
    with ds.Tape() as tape:
        loss = ds.nn.mse(net(x), target)
    tape.backward(loss)
    g = flat.grad.numpy().copy()
    p = flat.numpy().copy()
    d = np.random.default_rng(3).normal(size=p.size)

    def L(q):
        return np.mean((numpy_mlp(net, q, x) - target) ** 2)
    fd = (L(p + 1e-6 * d) - L(p - 1e-6 * d)) / 2e-6
    assert abs(g @ d - fd) <= 1e-6 * max(1.0, abs(fd))


def test_input_derivative_streams_to_third_order():
    ds.init(backend="python")
    try:
        net = ds.nn.MLP([2, 5, 5, 1], activation="tanh", seed=0)
        x = np.random.default_rng(1).normal(size=(4, 2))
        p = net.flat_parameters().numpy()
        Y, streams = net.jet(x, [(0, 1), (1, 1, 1)])
        f = lambda z: numpy_mlp(net, p, z)[:, 0]  # noqa: E731
        h = 1e-3
        e0, e1 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
        u01 = (f(x + h * e0 + h * e1) - f(x + h * e0 - h * e1) - f(x - h * e0 + h * e1) + f(x - h * e0 - h * e1)) / (4 * h * h)
        u111 = (f(x + 2 * h * e1) - 2 * f(x + h * e1) + 2 * f(x - h * e1) - f(x - 2 * h * e1)) / (2 * h ** 3)
        np.testing.assert_allclose(Y.numpy()[streams.index((0, 1)), :, 0], u01, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(Y.numpy()[streams.index((1, 1, 1)), :, 0], u111, rtol=1e-3, atol=1e-4)
    finally:
        ds.init(backend="cpu")


def test_net_func_inside_a_kernel_equals_forward(tmp_path):
    net = ds.nn.MLP([2, 4, 3], activation="tanh", seed=4)
    f = net.func
    import importlib.util
    src = tmp_path / "use_func.py"
    src.write_text(
        "import difsci as ds\n"
        "def make(f):\n"
        "    @ds.kernel\n"
        "    def apply(params, x, y):\n"
        "        for n in range(x.shape[0]):\n"
        "            y[n] = f(params, x[n])\n"
        "    return apply\n")
    spec = importlib.util.spec_from_file_location("use_func", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    apply = mod.make(f)
    x = np.random.default_rng(0).normal(size=(6, 2))
    y = ds.zeros(6, dtype=ds.vec3)
    apply(net.flat_parameters(), ds.array(x, dtype=ds.vec2), y)
    np.testing.assert_allclose(y.numpy(), net(x).numpy(), rtol=1e-12)


def test_save_and_load(tmp_path):
    net = ds.nn.MLP([2, 3, 1], activation="sin", seed=5, dtype=np.float32)
    net.save(tmp_path / "net.npz")
    net2 = ds.nn.MLP.load(tmp_path / "net.npz")
    x = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    np.testing.assert_array_equal(net(x).numpy(), net2(x).numpy())
    assert net2.dtype == np.float32


def test_optimizers_reduce_a_quadratic():
    for make in (lambda p: ds.nn.SGD(p, lr=0.1), lambda p: ds.nn.Adam(p, lr=0.1)):
        p = ds.array(np.array([3.0, -2.0]), requires_grad=True)
        opt = make(p)
        for _ in range(200):
            opt.zero_grad()
            p.grad.data[:] = 2 * p.data
            opt.step()
        assert np.abs(p.numpy()).max() < 1e-2
    p = ds.array(np.array([-1.2, 1.0]), requires_grad=True)
    lb = ds.nn.LBFGS(p, max_iter=100)

    def rosen():
        x, y = p.data
        p.grad.data[:] = [-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)]
        return (1 - x) ** 2 + 100 * (y - x * x) ** 2
    lb.step(rosen)
    np.testing.assert_allclose(p.numpy(), [1.0, 1.0], atol=1e-5)


def test_pinn_residual_vanishes_on_exact_solution_and_training_reduces_loss():
    x, y = sp.symbols("x y")
    u = sp.Function("u")
    net = ds.nn.MLP([2, 8, 1], activation="tanh", seed=0)
    f = -2 * sp.pi ** 2 * sp.sin(sp.pi * x) * sp.sin(sp.pi * y)
    pinn = ds.nn.PINN(net, inputs=(x, y), outputs=(u,),
                      equations=[u(x, y).diff(x, 2) + u(x, y).diff(y, 2) - f])
    X = ds.nn.box_samples([0, 0], [1, 1], 64, "lhs", seed=1)
    l0, g = pinn.loss_and_grad(X)
    flat = net.flat_parameters()
    p = flat.numpy().copy()
    d = np.random.default_rng(0).normal(size=p.size)
    flat.data[:] = p + 1e-6 * d
    lp, _ = pinn.loss_and_grad(X)
    flat.data[:] = p - 1e-6 * d
    lm, _ = pinn.loss_and_grad(X)
    flat.data[:] = p
    assert abs(g @ d - (lp - lm) / 2e-6) <= 1e-5 * max(1, abs(g @ d))
    hist = pinn.train(X, steps=60, lr=1e-2, lbfgs_steps=20, verbose=False)
    assert len(hist["loss"]) >= 61 and hist["loss"][-1] < 0.05 * hist["loss"][0]
    # the generated residual vanishes on the exact solution's derivative streams
    px, py = np.pi * X[:, 0], np.pi * X[:, 1]
    exact = {(): np.sin(px) * np.sin(py), (0,): np.pi * np.cos(px) * np.sin(py),
             (1,): np.pi * np.sin(px) * np.cos(py), (0, 0): -np.pi ** 2 * np.sin(px) * np.sin(py),
             (1, 1): -np.pi ** 2 * np.sin(px) * np.sin(py)}
    Y = np.stack([exact[m] for m in pinn.streams])[:, :, None]
    R = np.zeros((64, 1))
    pinn._residual_values(np.ascontiguousarray(Y), X, R)
    assert np.abs(R).max() < 1e-10


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pinn_step_with_conditions_matches_finite_differences_and_repeats(dtype):
    """loss_and_grad: collocation streams and condition points in one launch per layer, buffers kept
    between calls; the gradient against central differences (float64), repeated calls identical."""
    t, x = sp.symbols("t x")
    u = sp.Function("u")
    net = ds.nn.MLP([2, 6, 6, 1], activation="tanh", seed=3, dtype=dtype)
    pinn = ds.nn.PINN(net, inputs=(t, x), outputs=(u,),
                      equations=[u(t, x).diff(t) + u(t, x) * u(t, x).diff(x) - 0.01 * u(t, x).diff(x, 2)])
    r = np.random.default_rng(4)
    pinn.add_condition(np.stack([0 * r.random(7), r.uniform(-1, 1, 7)], 1), r.normal(size=7), output=u)
    pinn.add_condition(np.stack([r.random(5), np.ones(5)], 1), np.zeros(5), output=u, weight=2.0)
    X = ds.nn.box_samples([0, -1], [1, 1], 33, "lhs", seed=2)
    f, g = pinn.loss_and_grad(X)
    f2, g2 = pinn.loss_and_grad(X)
    assert f == f2 and np.array_equal(g, g2)
    # the same loss from the residuals and a plain forward of the condition points
    want = np.mean(pinn.residuals(X)[:, 0].astype(np.float64) ** 2)
    for (pts, vals, _, w) in pinn.conditions:
        want += w * np.mean((pinn.predict(pts)[:, 0] - vals) ** 2)
    assert abs(f - want) <= (1e-12 if dtype == np.float64 else 1e-5) * want
    if dtype == np.float32:
        return
    flat = net.flat_parameters()
    p = flat.numpy().copy()
    d = np.random.default_rng(5).normal(size=p.size)
    flat.data[:] = p + 1e-6 * d
    lp, _ = pinn.loss_and_grad(X)
    flat.data[:] = p - 1e-6 * d
    lm, _ = pinn.loss_and_grad(X)
    flat.data[:] = p
    assert abs(g @ d - (lp - lm) / 2e-6) <= 1e-6 * max(1, abs(g @ d))
    # a recorded loss without a (completed) backward leaves the kept buffers marked: the next step zeroes
    # their gradients first (here made nonzero by hand, as a backward stopped halfway would leave them)
    with ds.Tape():
        pinn._record_loss(np.ascontiguousarray(X), reuse=True)
    for a in pinn._bufs[0]["arrays"]:
        a.grad.data[...] = 1.0
    f3, g3 = pinn.loss_and_grad(X)
    assert f3 == f and np.array_equal(g3, g)
    # the collocation points in blocks (4 of 8-9 points here; 2,048 by default): the same loss and gradient
    pinn.chunk = 9
    f4, g4 = pinn.loss_and_grad(X)
    assert len(pinn._bufs) == 4 and abs(f4 - f) <= 1e-14 * f
    np.testing.assert_allclose(g4, g, rtol=1e-12, atol=1e-14 * np.abs(g).max())
