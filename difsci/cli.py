"""The ``difsci`` command line: list and run the examples, run the benchmarks.

This module must stay importable without the compiler: ``difsci`` itself is
imported lazily, only by the commands that need it.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Sequence

#: The repository root (``Path(difsci.__file__).parent.parent``), where
#: ``examples/`` and ``benchmarks/`` live next to the package.
REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPO_ROOT / "examples" / "physics"
BENCH_SCRIPT = REPO_ROOT / "benchmarks" / "run.py"


def list_examples() -> dict[str, str]:
    """Return ``{name: description}`` for every ``examples/physics/*.py``.

    The description is the first line of the module docstring, read from the
    file's AST, so listing does not import (or compile) anything.
    """
    found: dict[str, str] = {}
    if not EXAMPLES_DIR.is_dir():
        return found
    for path in sorted(EXAMPLES_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        except (SyntaxError, UnicodeDecodeError):
            doc = ""
        found[path.stem] = doc.strip().splitlines()[0] if doc.strip() else ""
    return found


def load_module(path: Path, name: str) -> ModuleType:
    """Import the file ``path`` as module ``name`` and register it in ``sys.modules``."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with the ``examples``, ``run`` and ``bench`` commands."""
    parser = argparse.ArgumentParser(
        prog="difsci",
        description="difsci: a differentiable-programming language for scientific computing.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("examples", help="list the runnable examples")

    run = sub.add_parser("run", help="run an example (see `difsci examples`)")
    run.add_argument("name", help="example name, e.g. demo")
    run.add_argument("--iters", type=int, default=None,
                     help="optimisation iterations (the example's default if omitted)")
    run.add_argument("--plot", metavar="OUT.png", default=None, help="save a plot to this file")
    run.add_argument("--gif", metavar="OUT.gif", default=None,
                     help="save an animation to this file (examples that support it)")
    run.add_argument("--backend", choices=("cpu", "cuda", "python"), default=None,
                     help="backend (default: $DIFSCI_BACKEND or cpu)")
    run.add_argument("--size", choices=("small", "default"), default="default",
                     help="problem size")
    run.add_argument("--mpi", action="store_true",
                     help="run over MPI ranks (start with `mpiexec -n N difsci run NAME`; "
                          "implied when mpiexec starts several processes)")

    bench = sub.add_parser("bench", help="run the benchmark suite, printed as a table")
    bench.add_argument("--quick", action="store_true", help="small sizes, few repetitions")
    return parser


def cmd_examples() -> int:
    """Print ``name  description`` for each example."""
    examples = list_examples()
    if not examples:
        print(f"difsci: no examples found in {EXAMPLES_DIR}", file=sys.stderr)
        return 1
    width = max(len(name) for name in examples)
    for name, desc in examples.items():
        print(f"{name:<{width}}  {desc}".rstrip())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Load ``examples/physics/NAME.py`` and call its ``main(args)``."""
    examples = list_examples()
    if args.name not in examples:
        available = ", ".join(examples) or "(none)"
        print(f"difsci: unknown example {args.name!r}; available: {available}", file=sys.stderr)
        return 2
    if args.backend is not None:
        import difsci  # lazily: the compiler is only needed to actually run something

        difsci.init(backend=args.backend)
    module = load_module(EXAMPLES_DIR / f"{args.name}.py", f"difsci_examples_{args.name}")
    if not hasattr(module, "main"):
        print(f"difsci: example {args.name!r} has no main(args)", file=sys.stderr)
        return 2
    args.mpi = getattr(args, "mpi", False) or _mpi_launcher_size() > 1
    if args.mpi:
        if not hasattr(module, "main_mpi"):
            print(f"difsci: example {args.name!r} has no MPI version (examples with one: wave, "
                  "burgers_pinn)", file=sys.stderr)
            return 2
        code = _start_mpi(args)
        if code:
            return code
        result = module.main_mpi(args)
    else:
        result = module.main(args)
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def _mpi_launcher_size() -> int:
    """The process count an MPI launcher (mpiexec) set in the environment; 1 without one."""
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 1


def _start_mpi(args: argparse.Namespace) -> int:
    """``ds.distributed.init()``; rank 0 alone prints and writes plots. Non-zero on error."""
    import difsci

    try:
        comm = difsci.distributed.init()
    except difsci.DifsciError as e:
        print(f"difsci: --mpi: {e}", file=sys.stderr)
        return 2
    if comm.rank == 0:
        note = "  (1 rank: start with `mpiexec -n N` to use more)" if comm.size == 1 else ""
        print(f"difsci: running {args.name} on {comm.size} MPI ranks{note}", flush=True)
    else:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- for the process's lifetime: one copy of the output
        args.plot = args.gif = None
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run ``benchmarks/run.py``'s ``main(quick=...)``."""
    if not BENCH_SCRIPT.is_file():
        print(f"difsci: benchmark script not found: {BENCH_SCRIPT}", file=sys.stderr)
        return 2
    module = load_module(BENCH_SCRIPT, "difsci_benchmarks_run")
    result = module.main(quick=args.quick)
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``difsci`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "examples":
        return cmd_examples()
    if args.command == "run":
        return cmd_run(args)
    if args.command == "bench":
        return cmd_bench(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
