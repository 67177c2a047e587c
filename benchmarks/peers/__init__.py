"""Optional peer frameworks.  ``available()`` returns those that import; the others are skipped."""
from __future__ import annotations

import importlib


def available(names=("jax", "torch")) -> dict:
    """``{name: module}`` for the peers whose framework imports here (skips the rest silently)."""
    found = {}
    for name in names:
        try:
            found[name] = importlib.import_module(f"{__name__}.{name}_peer")
        except Exception:  # noqa: BLE001, S112 -- not installed, or broken: skip cleanly
            continue
    return found
