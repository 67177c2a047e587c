"""What-if variants of difsci's generated code, for diagnosis only.

``rewrite(kernel_source, ...)`` takes the text difsci generated for a kernel
(``kernel.source`` / ``kernel.adjoint.source``), applies a textual change a
code generator could make (serial loops instead of prange; plain ``+=``
instead of atomics — valid only once the loops are serial), and loads the
result from a temporary file.  The table shows these rows as "what-if": they
estimate what a code-generator change would buy; they are not difsci.
"""
from __future__ import annotations

import atexit
import importlib.util
import re
import shutil
import sys
import tempfile
from pathlib import Path

_DIR = Path(tempfile.mkdtemp(prefix="difsci_bench_whatif_"))
atexit.register(shutil.rmtree, _DIR, True)          # leave nothing behind in /tmp
_count = 0


def _plain_add(line: str) -> str:
    """``atomic_add(a, (i, j), v)`` -> ``a[i, j] += v`` (one call per line, as difsci prints them)."""
    s = line.strip()
    if not s.startswith("atomic_add("):
        return line
    indent = line[: len(line) - len(line.lstrip())]
    inner = s[len("atomic_add("):-1]
    arr, rest = inner.split(", ", 1)
    assert rest.startswith("("), line
    depth = 0
    for k, ch in enumerate(rest):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            break
    idx = rest[1:k].rstrip(",")
    val = rest[k + 1:].lstrip(", ")
    return f"{indent}{arr}[{idx}] += {val}"


def rewrite(source: str, serial: bool = True, plain_atomics: bool = False) -> str:
    src = source
    if serial:
        src = src.replace("parallel=True, ", "").replace("prange(", "range(")
    if plain_atomics:
        assert serial, "plain adds are only correct without threads"
        src = "\n".join(_plain_add(ln) for ln in src.splitlines()) + "\n"
    return src.replace("cache=True", "cache=False")


def load(source: str, name: str):
    """Import ``source`` from a temporary file and return its function ``name``."""
    global _count
    _count += 1
    modname = f"_difsci_whatif_{_count}"
    path = _DIR / f"{modname}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    spec.loader.exec_module(mod)
    return getattr(mod, name)


def signature(source: str, name: str) -> list[str]:
    """Parameter names of ``def name(...)`` in generated source."""
    m = re.search(rf"def {name}\((.*?)\):", source)
    if not m:
        raise ValueError(f"no def {name} in the generated source")
    return [p.strip() for p in m.group(1).split(",") if p.strip()]


def _rt(v):
    """A kernel argument as generated code receives it (numpy data; 0-d arrays as shape (1,))."""
    d = v.numpy() if hasattr(v, "numpy") else v
    if hasattr(d, "ndim") and d.ndim == 0:
        return d.reshape(1)
    return d


def forward_and_adjoint(kernel, args: dict, plain_atomics: bool = True):
    """Serial what-if versions of a launched kernel and its adjoint.

    ``args`` maps the kernel's parameter names to the values of a launch
    (ds.Arrays whose ``.grad`` are the adjoint buffers).  Returns
    ``(forward(), adjoint())``: zero-argument callables running the rewritten
    generated code on those arrays (the adjoint reads and accumulates the
    ``.grad`` buffers, exactly like ``kernel.adjoint``).
    """
    name = kernel.__name__
    fsrc = rewrite(kernel.source, serial=True, plain_atomics=plain_atomics)
    asrc = rewrite(kernel.adjoint.source, serial=True, plain_atomics=plain_atomics)
    f = load(fsrc, name)
    a = load(asrc, name + "_adjoint")
    fargs = [_rt(args[p]) for p in signature(fsrc, name)]
    aargs = [_rt(args[p]) if p in args else _rt(args[p[:-4]].grad) for p in signature(asrc, name + "_adjoint")]
    return (lambda: f(*fargs)), (lambda: a(*aargs))
