"""Load generated Python source as an importable, numba-cacheable module.

numba's on-disk cache (``@njit(cache=True)``) only works for functions that
live in a real file of a module registered in ``sys.modules`` under a stable
name (see NUMBA_NOTES §3).  :func:`load_source` therefore

1. derives a module name from a hash of the source (plus a caller key and the
   difsci version),
2. writes ``<cache_dir>/<modname>.py`` atomically (temp file + ``os.replace``)
   unless an identical file is already there,
3. imports it with ``importlib`` after registering it in ``sys.modules``.

numba then keeps its ``.nbi``/``.nbc`` files in ``<cache_dir>/__pycache__``
(or under ``$NUMBA_CACHE_DIR`` if the user set it).  No ``.pyc`` is written or
read for generated modules: the code object is compiled from the in-memory
source, so a stale bytecode cache can never shadow a rewritten file.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import importlib.util
import os
import pathlib
import stat
import sys
import tempfile
import threading
import types

__all__ = ["cache_dir", "load_source", "version", "module_name"]

_HEADER_PREFIX = "# difsci-generated sha256="
_MODULE_PREFIX = "_difsci_"
_lock = threading.RLock()


def version() -> str:
    """Return ``difsci.__version__``, or ``"0.0.0"`` if it is not available."""
    try:
        from difsci import __version__  # type: ignore[attr-defined]
    except Exception:  # ImportError, or a namespace package without it
        return "0.0.0"
    return str(__version__)


def cache_dir() -> pathlib.Path:
    """Return the directory for generated modules, creating it if needed.

    ``$DIFSCI_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/difsci/<version>``
    (``~/.cache/difsci/<version>`` when ``XDG_CACHE_HOME`` is unset).
    A newly created directory gets mode ``0o700``.  Because the directory
    holds code that gets imported (and numba's pickled cache files), an
    existing directory owned by another user or writable by group/others is
    refused with ``PermissionError``.
    """
    env = os.environ.get("DIFSCI_CACHE_DIR")
    if env:
        path = pathlib.Path(env).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        path = pathlib.Path(base).expanduser() / "difsci" / version()
    path = path.absolute()
    try:
        path.mkdir(mode=0o700, parents=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    except FileExistsError:
        pass
    _check_private(path)
    return path


def _check_private(path: pathlib.Path) -> None:
    """Refuse a cache directory other users could write code into."""
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"difsci cache path is not a directory: {path}")
    if not hasattr(os, "getuid"):  # non-POSIX: no ownership model to check
        return
    if st.st_uid != os.getuid():
        raise PermissionError(
            f"difsci cache directory {path} is owned by uid {st.st_uid}, not by "
            f"the current user; set DIFSCI_CACHE_DIR to a private directory")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(
            f"difsci cache directory {path} is writable by group/others "
            f"(mode {stat.S_IMODE(st.st_mode):o}); run `chmod 700 {path}` or set "
            f"DIFSCI_CACHE_DIR to a private directory")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def module_name(source: str, key: str = "") -> str:
    """Return the deterministic module name :func:`load_source` uses."""
    blob = "\0".join((version(), key, source)).encode("utf-8")
    return _MODULE_PREFIX + _sha256(blob)[:20]


def _file_bytes(source: str) -> bytes:
    body = source.encode("utf-8")
    return f"{_HEADER_PREFIX}{_sha256(body)}\n".encode("ascii") + body


def _remove_stale_caches(directory: pathlib.Path, modname: str) -> None:
    """Delete numba index/data files (and any .pyc) left for ``modname``."""
    pycache = directory / "__pycache__"
    for pattern in (f"{modname}.*.nbi", f"{modname}.*.nbc", f"{modname}.*.pyc"):
        for p in pycache.glob(pattern):
            try:
                p.unlink()
            except FileNotFoundError:
                pass


def _write_atomic(path: pathlib.Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same dir + ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _ensure_file(path: pathlib.Path, modname: str, data: bytes) -> None:
    """Make ``path`` hold exactly ``data``, rewriting a corrupt or foreign file."""
    try:
        existing = path.read_bytes()
    except FileNotFoundError:
        existing = None
    if existing == data:
        return
    if existing is not None:
        # Half-written, corrupted or tampered with (header mismatch), or a
        # header-valid file whose content is not ours: either way rebuild it
        # and drop whatever numba cached for the old content.
        _remove_stale_caches(path.parent, modname)
    _write_atomic(path, data)


class _GeneratedLoader(importlib.machinery.SourceFileLoader):
    """Source loader that compiles the known source and never touches ``.pyc``."""

    def __init__(self, fullname: str, path: str, source: str) -> None:
        super().__init__(fullname, path)
        self._source = source

    def get_code(self, fullname: str) -> types.CodeType:
        if _PYTHON_RUNTIME in self._source:
            return compile(_numpy_float_constants(self._source), self.path, "exec", dont_inherit=True)
        return compile(self._source, self.path, "exec", dont_inherit=True)


_PYTHON_RUNTIME = "from difsci.lang.backends.rt_python import"


def _numpy_float_constants(source: str) -> ast.Module:
    """The plain-Python backend's code with every float literal a ``np.float64`` (module-level names).

    numba types a literal ``0.0`` as float64, so ``1.0 / s`` with ``s = 0.0`` is inf there; a Python float
    would raise ZeroDivisionError. The shown source is unchanged: only the executed code differs."""
    tree = ast.parse(source)
    names: dict = {}

    class _Floats(ast.NodeTransformer):
        def visit_Constant(self, node):
            if type(node.value) is float:
                key = repr(node.value)
                name = names.setdefault(key, f"_ds_f64_{len(names)}")
                return ast.copy_location(ast.Name(name, ast.Load()), node)
            return node

    tree = _Floats().visit(tree)
    defs = [ast.parse(f"{name} = np.float64({key})").body[0] for key, name in names.items()]
    for d in defs:
        for node in ast.walk(d):
            node.lineno = node.end_lineno = 1
            node.col_offset = node.end_col_offset = 0
    k = next((i + 1 for i, st in enumerate(tree.body) if isinstance(st, ast.ImportFrom)
              and st.module == "difsci.lang.backends.rt_python"), 0)
    tree.body[k:k] = defs
    return tree


def load_source(source: str, key: str = "") -> types.ModuleType:
    """Import generated ``source`` as a module and return it.

    The module is named ``_difsci_<20 hex of sha256(version, key, source)>``
    and stored as ``<cache_dir()>/<name>.py`` whose first line is
    ``# difsci-generated sha256=<hash of the rest>``.  Loading the same
    ``(source, key)`` again returns the module already in ``sys.modules``.
    Safe to call from several processes at once.  If executing the module
    raises, the file is removed (so the next call rebuilds it) and the
    exception propagates.
    """
    modname = module_name(source, key)
    with _lock:
        mod = sys.modules.get(modname)
        if mod is not None:
            return mod
        directory = cache_dir()
        path = directory / f"{modname}.py"
        _ensure_file(path, modname, _file_bytes(source))
        # The header line shifts line numbers by one; compile the exact file
        # text so tracebacks, inspect and numba's locator all agree.
        text = _file_bytes(source).decode("utf-8")
        loader = _GeneratedLoader(modname, str(path), text)
        spec = importlib.util.spec_from_file_location(modname, path, loader=loader)
        assert spec is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[modname] = mod  # must precede exec_module for numba caching
        try:
            loader.exec_module(mod)
        except BaseException:
            sys.modules.pop(modname, None)
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            _remove_stale_caches(directory, modname)
            raise
        if "numba" in sys.modules:  # numba functions in it: load their cached code without numba's refresh
            from .backends import numba_cache
            numba_cache.install(mod)
        return mod
