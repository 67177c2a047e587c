"""``ds.Array`` (API.md §2): dtypes, gradients, views, fill/zero_grad,
numpy interop, arrays of vectors, and arrays (and plain numpy arrays, and
views) passed to kernels."""
from __future__ import annotations

import numpy as np
import pytest

import difsci as ds

from conftest import assert_close, cuda_available


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_dtype_kept(dtype):
    a = ds.array(np.arange(6, dtype=dtype).reshape(2, 3))
    assert a.dtype == dtype and a.numpy().dtype == dtype
    assert a.shape == (2, 3) and a.ndim == 2 and a.size == 6 and len(a) == 2 and a.device == "cpu"
    z = ds.zeros((4, 5), dtype=dtype)
    assert z.dtype == dtype and z.shape == (4, 5) and not z.numpy().any()
    assert ds.ones(3, dtype=dtype).numpy().tolist() == [1, 1, 1]
    assert ds.full((2,), 7, dtype=dtype).numpy().tolist() == [7, 7]


def test_dtype_from_python_values():
    assert ds.array([1.0, 2.0]).dtype == np.float64
    assert ds.array([1, 2]).dtype == np.int64
    assert ds.array(np.float16([1])).dtype == np.float64
    assert ds.array([1, 2], dtype=np.float32).dtype == np.float32
    assert ds.zeros(3).dtype == np.float64
    with pytest.raises(TypeError):
        ds.array(["a"])


def test_array_copies_and_numpy_is_a_view():
    src = np.arange(4.0)
    a = ds.array(src)
    src[0] = 99.0
    assert a.numpy()[0] == 0.0                      # ds.array copies its input
    a.numpy()[1] = 5.0
    assert a.numpy()[1] == 5.0                      # .numpy() is the data itself
    assert np.shares_memory(a.numpy(), a.numpy())
    assert np.asarray(a) is a.numpy() or np.shares_memory(np.asarray(a), a.numpy())
    assert np.asarray(a, dtype=np.float32).dtype == np.float32
    assert np.sum(a) == 0 + 5 + 2 + 3                   # numpy functions accept it


def test_zero_d_arrays():
    s = ds.zeros((), requires_grad=True)
    assert s.shape == () and s.ndim == 0 and s.numpy().shape == ()
    assert s.grad.shape == ()
    b = ds.array(np.array(2.5))
    assert b.shape == () and float(b.numpy()) == 2.5
    b.fill(1.0)
    assert float(b.numpy()) == 1.0


def test_grad_buffers():
    x = ds.array(np.linspace(0, 1, 5), requires_grad=True)
    assert x.requires_grad and isinstance(x.grad, ds.Array)
    assert x.grad.shape == x.shape and x.grad.dtype == x.dtype and not x.grad.numpy().any()
    assert x.grad.grad is None
    y = ds.zeros(5, dtype=np.float32, requires_grad=True)
    assert y.grad.dtype == np.float32
    assert ds.array([1.0]).grad is None
    x.grad.numpy()[:] = 3.0
    x.zero_grad()
    assert not x.grad.numpy().any()
    ds.array([1.0]).zero_grad()                     # no gradient: nothing to do


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_requires_grad_on_int_arrays_is_a_type_error(dtype):
    with pytest.raises(TypeError):
        ds.zeros(3, dtype=dtype, requires_grad=True)
    with pytest.raises(TypeError):
        ds.array(np.arange(3, dtype=dtype), requires_grad=True)


def test_fill():
    a = ds.zeros((2, 3))
    assert a.fill(2.5) is a
    assert (a.numpy() == 2.5).all()
    v = ds.zeros(3, dtype=ds.vec2).fill(1.0)
    assert (v.numpy() == 1.0).all()


def test_views_share_data_and_grad():
    x = ds.array(np.arange(12.0).reshape(3, 4), requires_grad=True)
    v = x[1:, 0]
    assert v.shape == (2,) and v.requires_grad
    assert v.grad.shape == (2,)
    v.numpy()[:] = -1.0
    v.grad.numpy()[:] = 7.0
    assert (x.numpy()[1:, 0] == -1).all() and (x.grad.numpy()[1:, 0] == 7).all()
    assert x.grad.numpy().sum() == 14.0
    inner = x[1:-1]
    assert inner.shape == (1, 4) and np.shares_memory(inner.grad.numpy(), x.grad.numpy())
    v.zero_grad()
    assert not x.grad.numpy().any()
    with pytest.raises(IndexError):
        x[0, 0]                                    # elements are read through .numpy()


def test_arrays_of_vectors_and_matrices():
    a = np.arange(12.0).reshape(6, 2)
    p = ds.array(a, dtype=ds.vec2)
    assert p.shape == (6,) and p.dtype == ds.vec2 and p.ndim == 1 and len(p) == 6
    assert p.numpy().shape == (6, 2)                # trailing axes given back
    m = ds.array(np.zeros((3, 4, 2, 2)), dtype=ds.mat2)
    assert m.shape == (3, 4) and m.numpy().shape == (3, 4, 2, 2)
    z = ds.zeros(5, dtype=ds.vec3f, requires_grad=True)
    assert z.numpy().shape == (5, 3) and z.numpy().dtype == np.float32 and z.grad.dtype == ds.vec3f
    view = p[2:4]
    assert view.shape == (2,) and view.dtype == ds.vec2
    assert_close(view.numpy(), a[2:4])
    with pytest.raises(ValueError):
        ds.array(np.zeros((4, 3)), dtype=ds.vec2)   # wrong trailing axis
    assert ds.zeros_like(p).dtype == ds.vec2 and ds.zeros_like(p).shape == (6,)


def test_zeros_like_and_copy():
    x = ds.array(np.ones((2, 3), np.float32), requires_grad=True)
    z = ds.zeros_like(x)
    assert z.shape == x.shape and z.dtype == np.float32 and z.requires_grad
    assert not ds.zeros_like(x, requires_grad=False).requires_grad


def test_to_device():
    x = ds.array(np.arange(3.0))
    assert x.to("cpu") is x
    with pytest.raises(ValueError):
        x.to("tpu")
    if not cuda_available():
        with pytest.raises(ds.BackendError, match="NUMBA_ENABLE_CUDASIM"):
            x.to("cuda")                            # no GPU here: says so, and how to simulate one
        return
    g = x.to("cuda")
    assert g.device == "cuda" and g.shape == (3,)
    back = g.to("cpu")
    assert back.device == "cpu" and (back.numpy() == x.numpy()).all()


# ================================================================ in kernels
@ds.kernel
def k_scale(x: ds.f64[:], out: ds.f64[:]):
    for i in range(x.shape[0]):
        out[i] = 2.0 * x[i] + i


@ds.kernel
def k_shift_vec(p: ds.vec2[:], d: ds.vec2):
    for i in range(p.shape[0]):
        p[i] = p[i] + d * i


def test_kernels_accept_numpy_and_views(backend):
    x = np.arange(10.0)
    out = np.zeros(10)
    k_scale(x, out)                                 # plain numpy arrays
    assert_close(out, 2 * x + np.arange(10))
    big = ds.array(np.arange(20.0).reshape(10, 2), requires_grad=True)
    res = ds.zeros((10, 3))
    k_scale(big[:, 1], res[:, 2])                   # strided views, read and written
    assert_close(res.numpy()[:, 2], 2 * big.numpy()[:, 1] + np.arange(10))
    assert not res.numpy()[:, :2].any()
    k_scale(x[2:7], res[1:6, 0])
    assert_close(res.numpy()[1:6, 0], 2 * x[2:7] + np.arange(5))


def test_kernels_write_vector_array_views(backend):
    p = ds.array(np.zeros((6, 2)), dtype=ds.vec2)
    k_shift_vec(p[2:5], np.array([1.0, -1.0]))
    want = np.zeros((6, 2))
    want[2:5] = np.arange(3)[:, None] * [1, -1]
    assert_close(p.numpy(), want)


def test_fill_and_zero_grad_of_big_arrays_use_every_element():
    """Big contiguous arrays fill on all threads (backends/cpu_fill.py); views keep numpy's fill."""
    from difsci.lang.backends import cpu_fill
    n = cpu_fill.BIG + 7
    for dt in (np.float32, np.float64, ds.vec2):
        a = ds.zeros((n,), dtype=dt, requires_grad=True)
        a.grad.numpy()[...] = 1.0
        a.zero_grad()
        assert not a.grad.numpy().any()
        a.fill(2.5)
        assert np.all(a.numpy() == 2.5)
    b = ds.zeros((2 * n,))
    b[::2].fill(1.0)
    assert b.numpy()[::2].sum() == n and b.numpy()[1::2].sum() == 0
