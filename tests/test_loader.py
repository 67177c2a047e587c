"""Loader: content-hashed generated modules, numba cache across processes, corruption, races."""

from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from difsci.lang import loader
from difsci.lang.loader import cache_dir, load_source, module_name, version

REPO = pathlib.Path(__file__).resolve().parents[1]

# A generated kernel module of the kind the compiler emits: parallel, cached,
# using the atomics from an importable module.
KERNEL_SRC = textwrap.dedent("""\
    import numpy as np
    from numba import njit, prange
    from difsci.lang.backends.atomics import atomic_add, atomic_min, atomic_max

    @njit(parallel=True, cache=True, error_model='numpy')
    def hist(idx, val, out):
        for i in prange(idx.size):
            atomic_add(out, idx[i], val[i])
            atomic_max(out, (idx[i] + 1) % out.size, 0.0)
""")

CHILD = textwrap.dedent("""\
    import json, sys, numpy as np
    from difsci.lang.loader import load_source
    src = sys.stdin.read()
    mod = load_source(src, "test-key")
    out = np.zeros(8)
    idx = np.arange(4000) % 8
    mod.{fn}(idx, np.ones(4000), out)
    st = mod.{fn}.stats
    print(json.dumps({{"hits": sum(st.cache_hits.values()),
                      "misses": sum(st.cache_misses.values()),
                      "total": float(out.sum()), "file": mod.__file__}}))
""")


def _env(cache: pathlib.Path) -> dict:
    env = dict(os.environ)
    env["DIFSCI_CACHE_DIR"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("NUMBA_CACHE_DIR", None)
    return env


def _spawn(cache: pathlib.Path, src: str, fn: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD.format(fn=fn)], env=_env(cache), cwd=str(cache.parent),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen, src: str) -> dict:
    out, err = proc.communicate(src, timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _numba_files(cache: pathlib.Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in (cache / "__pycache__").glob("*.nb*")}


@pytest.fixture(autouse=True)
def _forget_generated_modules():
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("_difsci_"):
            del sys.modules[name]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> pathlib.Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("DIFSCI_CACHE_DIR", str(d))
    return d


def test_second_process_hits_numba_cache(cache):
    first = _result(_spawn(cache, KERNEL_SRC, "hist"), KERNEL_SRC)
    assert first["misses"] == 1 and first["hits"] == 0
    assert first["total"] == 4000.0
    files = _numba_files(cache)
    assert any(n.endswith(".nbi") for n in files) and any(n.endswith(".nbc") for n in files)

    second = _result(_spawn(cache, KERNEL_SRC, "hist"), KERNEL_SRC)
    assert second["hits"] == 1 and second["misses"] == 0
    assert second["total"] == 4000.0 and second["file"] == first["file"]
    assert _numba_files(cache) == files  # nothing recompiled or rewritten


def test_concurrent_processes_both_succeed(cache):
    src = textwrap.dedent("""\
        from numba import njit

        @njit(cache=True)
        def count(idx, val, out):
            for i in range(idx.size):
                out[idx[i]] += val[i]
    """)
    procs = [_spawn(cache, src, "count") for _ in range(2)]
    results = [_result(p, src) for p in procs]
    assert all(r["total"] == 4000.0 for r in results)
    assert results[0]["file"] == results[1]["file"]
    assert not list(cache.glob("*.tmp"))
    # The file both wrote is intact and a third process loads it from cache.
    third = _result(_spawn(cache, src, "count"), src)
    assert third["hits"] == 1


def test_file_format_and_module_identity(cache):
    src = "X = 41\n"
    mod = load_source(src, "k1")
    assert mod.__name__ == module_name(src, "k1")
    assert mod.__name__.startswith("_difsci_") and len(mod.__name__) == len("_difsci_") + 20
    assert sys.modules[mod.__name__] is mod
    assert load_source(src, "k1") is mod
    assert load_source(src, "k2") is not mod  # the key is part of the name
    data = pathlib.Path(mod.__file__).read_bytes()
    head, body = data.split(b"\n", 1)
    assert head == b"# difsci-generated sha256=" + hashlib.sha256(body).hexdigest().encode()
    assert body == src.encode()
    assert mod.X == 41
    assert not (cache / "__pycache__").exists() or not list(
        (cache / "__pycache__").glob("*.pyc"))


@pytest.mark.parametrize("damage", ["truncate", "edit", "edit_same_size_valid_header"])
def test_corrupt_file_is_rebuilt(cache, damage):
    src = "def f():\n    return 'good'\n"
    mod = load_source(src, "corrupt")
    path = pathlib.Path(mod.__file__)
    good = path.read_bytes()
    stale = [cache / "__pycache__" / f"{mod.__name__}.f-2.py311{s}" for s in (".nbi", ".1.nbc")]
    stale[0].parent.mkdir(exist_ok=True)
    for p in stale:
        p.write_bytes(b"stale")
    if damage == "truncate":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "edit":
        path.write_bytes(good.replace(b"good", b"evil!"))
    else:  # consistent header, different code of the same size
        body = src.replace("good", "evil").encode()
        path.write_bytes(b"# difsci-generated sha256=" + hashlib.sha256(body).hexdigest().encode()
                         + b"\n" + body)
    del sys.modules[mod.__name__]

    mod2 = load_source(src, "corrupt")
    assert mod2 is not mod and mod2.f() == "good"
    assert path.read_bytes() == good
    assert not any(p.exists() for p in stale)


def test_import_error_removes_file(cache):
    src = "raise RuntimeError('boom')\n"
    name = module_name(src, "bad")
    with pytest.raises(RuntimeError, match="boom"):
        load_source(src, "bad")
    assert name not in sys.modules
    assert not (cache / f"{name}.py").exists()
    with pytest.raises(RuntimeError, match="boom"):  # retried, not cached as broken
        load_source(src, "bad")


def test_cache_dir_private(tmp_path, monkeypatch):
    d = tmp_path / "a" / "b"
    monkeypatch.setenv("DIFSCI_CACHE_DIR", str(d))
    old = os.umask(0o022)
    try:
        assert cache_dir() == d
    finally:
        os.umask(old)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert cache_dir() == d  # idempotent


def test_cache_dir_xdg_and_version(tmp_path, monkeypatch):
    monkeypatch.delenv("DIFSCI_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    d = cache_dir()
    assert d == tmp_path / "xdg" / "difsci" / version()
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert isinstance(version(), str) and version().count(".") >= 2


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_cache_dir_refuses_shared_directory(tmp_path, monkeypatch):
    d = tmp_path / "shared"
    d.mkdir()
    os.chmod(d, 0o777)
    monkeypatch.setenv("DIFSCI_CACHE_DIR", str(d))
    with pytest.raises(PermissionError, match="writable by group/others"):
        cache_dir()
    with pytest.raises(PermissionError):
        loader.load_source("Y = 1\n", "shared")


# ------------------------------------------------ cache hits without numba's target-context refresh
# A kernel with everything a cached entry must bring back: prange (the threading layer starts in the
# entry's reload_init), an allocation (per-thread copies: np.zeros -> NRT), atomics (llvmlite
# intrinsics), math functions and a call into another numba function (randu, from rt_numba).
FAST_CHILD = textwrap.dedent("""\
    import json, sys
    import numpy as np
    import difsci as ds
    from difsci.lang.backends import numba_cache

    @ds.kernel
    def hist(idx: ds.i64[:], x: ds.f64[:], out: ds.f64[:], seed: int):
        for i in ds.ndrange(idx.shape[0]):
            out[idx[i]] += ds.sqrt(x[i]) + ds.exp(-x[i]) * ds.randu(seed, i)

    n = 3000
    idx = (np.arange(n) * 7) % 13
    x = np.linspace(0.0, 2.0, n)
    res = []
    for m in (13, 100000):      # 13 bins: per-thread copies (np.zeros); 100000: atomic adds
        out = ds.zeros(m)
        hist(ds.array(idx), ds.array(x), out, 3)
        res.append(out.numpy().tolist())
    import numba
    print(json.dumps({"stats": numba_cache.STATS, "res": res, "layer": numba.threading_layer(),
                      "refreshed": "numba.np.arraymath" in sys.modules}))
""")


def _fast_child(script: pathlib.Path, cache: pathlib.Path, **env) -> dict:
    e = _env(cache)
    e.pop("DIFSCI_NUMBA_FAST_CACHE", None)
    e.update(env)
    p = subprocess.run([sys.executable, str(script)], env=e, cwd=str(cache.parent), capture_output=True,
                       text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def _hist_reference():
    from difsci.lang.backends.random import randu_py
    n = 3000
    idx = (np.arange(n) * 7) % 13
    x = np.linspace(0.0, 2.0, n)
    want = np.zeros(13)
    for i in range(n):
        want[idx[i]] += np.sqrt(x[i]) + np.exp(-x[i]) * randu_py(3, i, 0, 0)
    return want


def test_cached_parallel_kernel_loads_without_refresh(cache, tmp_path):
    script = tmp_path / "fast_child.py"
    script.write_text(FAST_CHILD)
    import numba

    from difsci.lang.backends import numba_cache
    assert numba.__version__.startswith(numba_cache._TESTED), "numba version not in numba_cache._TESTED: check the internals it uses, then add it"
    first = _fast_child(script, cache)
    assert first["stats"]["fast"] == 0 and first["stats"]["miss"] == 1   # compiled
    assert first["refreshed"]
    second = _fast_child(script, cache)
    assert second["stats"] == {"fast": 1, "miss": 0, "fallback": 0, "rebuilt": 0}
    assert not second["refreshed"]          # numba's lowering modules were never imported
    assert second["layer"] in ("tbb", "omp", "workqueue")
    want = _hist_reference()
    for res in (first["res"], second["res"]):
        np.testing.assert_allclose(res[0], want, rtol=1e-12)
        np.testing.assert_allclose(res[1][:13], want, rtol=1e-12)
        assert not any(res[1][13:])
    # numba's own path (switched off) loads the same entry
    plain = _fast_child(script, cache, DIFSCI_NUMBA_FAST_CACHE="0")
    assert plain["stats"]["fast"] == 0 and plain["refreshed"]
    np.testing.assert_allclose(plain["res"][0], want, rtol=1e-12)


@pytest.mark.parametrize("damage", ["nbc", "nbi"])
def test_corrupt_numba_cache_entry_is_rebuilt(cache, damage):
    from difsci.lang.backends import numba_cache
    src = textwrap.dedent("""\
        import math
        from numba import njit

        @njit(cache=True)
        def norm(x):
            s = 0.0
            for i in range(x.size):
                s += x[i] * x[i]
            return math.sqrt(s)
    """)
    x = np.arange(4.0)
    assert load_source(src, "nb-damage").norm(x) == math.sqrt(14.0)       # compiled and saved
    before = dict(numba_cache.STATS)
    fast = 1 if numba_cache.enabled() else 0     # the recovery works on any numba version

    def fresh():
        del sys.modules[module_name(src, "nb-damage")]
        return load_source(src, "nb-damage")

    hit = fresh()
    assert hit.norm(x) == math.sqrt(14.0)                           # a hit through the fast path
    assert numba_cache.STATS["fast"] == before["fast"] + fast
    # numba's files sit in __pycache__ next to the module, or under NUMBA_CACHE_DIR (as in .ci/run)
    where = pathlib.Path(hit.norm._cache._cache_path)
    (target,) = where.glob(f"{module_name(src, 'nb-damage')}.*.{damage}")
    target.write_bytes(target.read_bytes()[:40])
    mod = fresh()
    assert mod.norm(x) == math.sqrt(14.0)                           # rebuilt, not an UnpicklingError
    assert numba_cache.STATS["rebuilt"] == before["rebuilt"] + 1
    assert sum(mod.norm.stats.cache_misses.values()) == 1
    assert fresh().norm(x) == math.sqrt(14.0)                       # and saved again: a fast hit
    assert numba_cache.STATS["fast"] == before["fast"] + 2 * fast
