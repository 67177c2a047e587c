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


    def variant(self) -> str:
        """The backend plus the flags that change generated code (a compile-cache key)."""
        flags = [f for f, on in (("deterministic", self.deterministic), ("debug", self.debug)) if on]
        return ":".join([self.backend] + flags)


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
    raise BackendError(
        "the cuda backend is not available in this version of difsci (and no GPU was checked for); "
        "once it lands, NUMBA_ENABLE_CUDASIM=1 runs it on numba's CPU simulator. "
        "Use backend='cpu' (numba, parallel) or 'python' meanwhile.")
