"""The compiler pipeline end to end: golden generated source, the compile cache
across processes, backends, error rendering.  ``DIFSCI_UPDATE_GOLDEN=1`` rewrites
the golden files."""
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import difsci as ds
from tests.kernels import golden_kernels as G

GOLDEN = pathlib.Path(__file__).parent / "golden"


def _normalise(src: str) -> str:
    # the header names the absolute path of the test file: keep only its name
    return re.sub(r"from \S*/(\w+\.py)", r"from \1", src)


def check_golden(name: str, text: str):
    path = GOLDEN / name
    text = _normalise(text)
    if os.environ.get("DIFSCI_UPDATE_GOLDEN") or not path.exists():
        path.write_text(text)
        if not os.environ.get("DIFSCI_UPDATE_GOLDEN"):
            pytest.fail(f"golden file {name} was missing and has been written; rerun")
    assert text == path.read_text(), f"generated source differs from {path} (DIFSCI_UPDATE_GOLDEN=1 to accept)"


@pytest.fixture
def python_backend():
    ds.init(backend="python")
    yield
    ds.init(backend="cpu")


@pytest.mark.parametrize("kernel", ["saxpy", "carried", "wave", "sq_sum"])
def test_golden_source(kernel, python_backend):
    k = getattr(G, kernel)
    check_golden(f"{kernel}.py.txt", k.source)
    check_golden(f"{kernel}_adjoint.py.txt", k.adjoint.source)


def test_golden_func_transforms(python_backend):
    ds.grad(G.spring, argnums=0)(np.array([0.0, 0.0]), np.array([2.0, 0.5]), 1.0)
    check_golden("spring_grad.py.txt", ds.grad(G.spring, argnums=0).source)


def test_generated_source_is_deterministic(python_backend):
    """Same kernel, same text, every run (no random ids)."""
    a = G.carried.adjoint.source
    script = textwrap.dedent(f"""
        import difsci as ds
        ds.init(backend="python")
        from tests.kernels import golden_kernels as G
        print(G.carried.adjoint.source, end="")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=pathlib.Path(__file__).parent.parent, check=True).stdout
    assert out == a


CACHE_SCRIPT = textwrap.dedent("""
    import time, numpy as np
    t0 = time.perf_counter()
    import difsci as ds
    from tests.kernels import golden_kernels as G
    x = np.arange(1000, dtype=np.float32); y = np.ones(1000, dtype=np.float32); out = np.zeros_like(x)
    t1 = time.perf_counter()
    G.saxpy(x, y, out, 2.0)
    t2 = time.perf_counter()
    (variant,) = G.saxpy._last._compiled      # 1000 elements: the serial build (backends/small.py)
    assert variant == "cpu:small", variant
    disp = G.saxpy._last.compiled(variant)[0]
    assert np.allclose(out, 2 * x + 1)
    print(f"{t2 - t1:.4f} {len(disp.stats.cache_hits)} {len(disp.stats.cache_misses)}")
""")


def _run_cached(tmp_path):
    env = dict(os.environ, DIFSCI_CACHE_DIR=str(tmp_path / "c"), NUMBA_CACHE_DIR=str(tmp_path / "n"))
    r = subprocess.run([sys.executable, "-c", CACHE_SCRIPT], capture_output=True, text=True, env=env,
                       cwd=pathlib.Path(__file__).parent.parent)
    assert r.returncode == 0, r.stderr
    t, hits, misses = r.stdout.split()
    return float(t), int(hits), int(misses)


def test_second_process_hits_the_cache(tmp_path):
    t_cold, hits0, _ = _run_cached(tmp_path)
    t_warm, hits1, misses1 = _run_cached(tmp_path)
    assert hits0 == 0
    assert hits1 == 1 and misses1 == 0
    assert t_warm < t_cold


def test_corrupted_numba_cache_is_rebuilt(tmp_path):
    _run_cached(tmp_path)
    for f in (tmp_path / "n").rglob("*.nbc"):
        f.write_bytes(b"garbage")
    for f in (tmp_path / "c").glob("*.py"):
        f.write_text(f.read_text()[:40])          # a half-written source file
    t, hits, misses = _run_cached(tmp_path)     # must still produce the right result
    assert hits + misses >= 0


def test_backend_env_var():
    script = "import difsci as ds; from difsci.config import config; print(config.backend)"
    env = dict(os.environ, DIFSCI_BACKEND="python")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "python"


def test_cuda_backend_without_gpu_says_how():
    with pytest.raises(ds.BackendError, match="NUMBA_ENABLE_CUDASIM=1"):
        ds.init(backend="cuda")


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        ds.init(backend="tpu")


def test_error_hides_compiler_frames():
    import traceback

    @ds.kernel
    def bad(x):
        for i in range(x.shape[0]):
            x[i] = undefined_name  # noqa: F821
    try:
        bad(np.zeros(3))
    except ds.CompileError as e:
        frames = traceback.extract_tb(e.__traceback__)
        assert all("difsci/lang/frontend" not in f.filename for f in frames)
        msg = str(e)
        assert "unknown name `undefined_name`" in msg
        assert f"{__file__}:" in msg and "^" in msg
    else:
        pytest.fail("no CompileError")


def test_numba_error_is_mapped_to_user_line():
    from difsci.lang.compiler import map_numba_error
    from difsci.lang.source import Loc

    class FakeTypingError(Exception):
        pass
    loc = Loc(__file__, 7, 4, 7, 9)
    err = map_numba_error(FakeTypingError('Invalid use of thing\nFile "/x/_difsci_1.py", line 12:'),
                          G.saxpy._last.fn if G.saxpy._last else None, {10: loc}, "saxpy")
    assert isinstance(err, ds.CompileError)
    assert f"{__file__}:7:5" in str(err)


def test_deterministic_mode_is_bitwise_reproducible():
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 4, size=20000)
    w = rng.normal(size=20000) * 1e3
    try:
        ds.init(deterministic=True)
        outs = []
        for _ in range(3):
            out = np.zeros(4)
            G.scatter(idx, w, out)
            outs.append(out)
        assert "serial: ds.init(deterministic=True)" in G.scatter.source
    finally:
        ds.init(deterministic=False)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
    ref = np.zeros(4)
    np.add.at(ref, idx, w * 0.1)
    np.testing.assert_allclose(outs[0], ref, rtol=1e-12)


def test_debug_mode_checks_bounds():
    x = np.zeros(4)
    out = np.zeros(4)
    try:
        ds.init(debug=True)
        with pytest.raises(IndexError):
            G.shifted(x, out)
    finally:
        ds.init(debug=False)


def test_loop_inside_top_level_if_is_serial():
    x = np.zeros(4)
    G.loop_in_if(x, 1)
    np.testing.assert_array_equal(x, [1.0, 3.0, 5.0, 7.0])
    src = G.loop_in_if.source
    assert src.count("prange") == 1 or "prange" in src.split("x[i] += 1.0")[0].split("flag")[-1]


def test_backward_sets_the_seed_so_repeated_training_steps_do_not_scale():
    x = ds.array([1.0, 2.0], requires_grad=True)
    loss = ds.zeros((), requires_grad=True)
    for _ in range(3):
        x.zero_grad()
        loss.fill(0.0)
        with ds.Tape() as tape:
            G.sq_sum(x, loss)
        tape.backward(loss)
        np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
        assert loss.grad.numpy() == 1.0
