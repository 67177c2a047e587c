"""Process-wide settings: the backend, debug checks, determinism."""
from __future__ import annotations

import os

from .errors import BackendError

BACKENDS = ("cpu", "python", "cuda")


class _Config:
    def __init__(self):
        self.backend = os.environ.get("DIFSCI_BACKEND", "cpu") or "cpu"
        self.debug = False
        self.deterministic = False

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        object.__setattr__(self, "_variant", None)      # recomputed on the next launch

    def variant(self) -> str:
        """The backend plus the flags that change generated code (a compile-cache key).  Asked for on
        every launch: kept until a setting changes."""
        v = self._variant
        if v is None:
            flags = [f for f, on in (("deterministic", self.deterministic), ("debug", self.debug)) if on]
            v = ":".join([self.backend] + flags)
            object.__setattr__(self, "_variant", v)
        return v


config = _Config()


def init(backend: str | None = None, debug: bool | None = None, deterministic: bool | None = None) -> None:
    """Choose the backend (``cpu``, ``python``, ``cuda``) and global checks."""
    if backend is not None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        if backend == "cuda":
            check_cuda()
        config.backend = backend
    if debug is not None:
        config.debug = bool(debug)
    if deterministic is not None:
        config.deterministic = bool(deterministic)


def check_cuda() -> None:
    """Raise ``BackendError`` unless numba can run CUDA kernels: a GPU, or the simulator."""
    if _cuda_ok:
        return
    _check_cuda()


_cuda_ok = False


def _check_cuda() -> None:
    # --- cuda backend (difsci/lang/backends/cuda_source.py) -------------------------------
    global _cuda_ok
    import sys

    import numba
    env_sim = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
    if env_sim and not numba.config.ENABLE_CUDASIM and "numba.cuda" not in sys.modules:
        numba.config.reload_config()    # set after numba was imported, before numba.cuda: still in time
    late = env_sim and not numba.config.ENABLE_CUDASIM
    why = ""
    try:
        from numba import cuda
        ok = bool(cuda.is_available())
    except Exception as e:  # a broken CUDA installation: say what numba said
        ok, why = False, f" ({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''})"
    if ok:
        _cuda_ok = True
        return
    hint = ("NUMBA_ENABLE_CUDASIM is set, but numba.cuda was imported before it was: set it before "
            "importing difsci or numba. " if late else "")
    raise BackendError(
        f"the cuda backend needs an NVIDIA GPU with a working driver, and numba found none{why}. "
        f"{hint}Set NUMBA_ENABLE_CUDASIM=1 in the environment (before importing difsci) to run the cuda "
        "backend on numba's CPU simulator (slow: about 150 us per GPU thread; for tests), "
        "or use backend='cpu' (numba, parallel) or 'python'.")
