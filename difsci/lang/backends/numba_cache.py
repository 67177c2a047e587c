"""A faster cache hit for the numba functions in generated modules.

numba's ``FunctionCache.load_overload`` starts every load with
``target_context.refresh()``.  The first refresh in a process imports every
lowering module numba has (and, through ``numba.np.linalg``, ``scipy.linalg``):
about 0.34 s, most of a cached start (benchmarks/RESULTS.md §5).  Loading a
cached overload needs none of it: the cached entry is finished object code plus
pickled descriptors.  What it does need is

* the CPU context's ``init`` (helper symbols, C math functions): done when the
  dispatcher's target context is created, before any load;
* the NRT (``rtsys.initialize``): the one part of ``refresh`` we keep, for
  kernels that allocate (``np.zeros``) or pass arrays around;
* each entry's ``reload_init`` callbacks (prange kernels launch the threading
  layer there): run by ``CompileResult._rebuild`` as usual.

:func:`install` replaces ``load_overload`` on each dispatcher's cache object
(an instance attribute) with :func:`_fast_load`, which calls numba's internal
``Cache._load_overload`` without the refresh.  ``Dispatcher.compile`` does the
rest of a hit as always (``insert_user_function``, ``add_overload``, the hit
counter).  On a miss it returns ``None`` and numba compiles (its compiler
refreshes the context itself).  If the fast load raises, numba's own
``load_overload`` (with the refresh) is tried; if that raises too, the entry
is unreadable (a corrupt ``.nbi``/``.nbc``): the function's index is flushed
and it is recompiled and saved again, instead of the error reaching the
kernel's caller.

Only numba versions listed in ``_TESTED`` get the fast path (it relies on the
internals named above); on any other, or with ``DIFSCI_NUMBA_FAST_CACHE=0``,
only the corrupt-entry recovery is installed.  ``STATS`` counts what happened
(tests read it; ``fast`` is the number of overloads loaded without a refresh).
"""
from __future__ import annotations

import os
import types

__all__ = ["STATS", "enabled", "install"]

_TESTED = ("0.68.",)

STATS = {"fast": 0, "miss": 0, "fallback": 0, "rebuilt": 0}


def enabled() -> bool:
    """Whether the refresh-free load is used (numba version known, not switched off)."""
    import numba
    if os.environ.get("DIFSCI_NUMBA_FAST_CACHE", "1") in ("0", ""):
        return False
    return numba.__version__.startswith(_TESTED)


def install(module: types.ModuleType) -> int:
    """Give every cache-enabled numba CPU dispatcher defined in ``module`` the fast load.

    Returns how many were changed.  Never raises: a dispatcher it does not
    recognise keeps numba's behaviour."""
    try:
        from numba.core.caching import FunctionCache
        from numba.core.registry import CPUDispatcher
        fast = enabled()
    except Exception:  # noqa: BLE001  (numba missing or reorganised)
        return 0
    n = 0
    for value in list(vars(module).values()):
        if not isinstance(value, CPUDispatcher):
            continue
        cache = getattr(value, "_cache", None)
        if type(cache) is not FunctionCache or "load_overload" in vars(cache):
            continue
        if getattr(value.py_func, "__module__", None) != module.__name__:
            continue  # imported from elsewhere, not generated here
        if fast and not hasattr(cache, "_load_overload"):
            continue
        cache.load_overload = types.MethodType(_fast_load if fast else _safe_load, cache)
        n += 1
    return n


def _fast_load(cache, sig, target_context):
    """``Cache.load_overload`` minus ``target_context.refresh()``; numba's own on an error."""
    try:
        from numba.core.runtime import rtsys
        rtsys.initialize(target_context)       # the NRT: all of refresh() a cached entry needs
        cres = cache._load_overload(sig, target_context)
    except Exception:  # noqa: BLE001
        STATS["fallback"] += 1
        return _safe_load(cache, sig, target_context)
    if cres is None:
        STATS["miss"] += 1
    else:
        STATS["fast"] += 1
    return cres


def _safe_load(cache, sig, target_context):
    """numba's ``load_overload``; an unreadable entry is dropped (-> recompile and save) instead of raised."""
    try:
        return type(cache).load_overload(cache, sig, target_context)
    except Exception:  # noqa: BLE001  (e.g. UnpicklingError, EOFError from a damaged file)
        STATS["rebuilt"] += 1
        try:
            cache.flush()
        except OSError:
            pass
        return None
