"""The difsci benchmark suite: ``python benchmarks/run.py [--quick]`` or ``difsci bench [--quick]``.

Each workload compares difsci, written as a user writes it (API.md), with a
hand-written numba reference, interleaved in one process (see harness.py);
the PINN step (workload 6) compares difsci with PyTorch eager and JAX ``jit``;
every result is checked against the reference first (a wrong number stops
that workload and makes the exit code 1).  Then the start-up costs (cold
compile, cached start) and the per-launch overhead.  Peers (jax, torch) run
when importable (``pip install -e ".[bench]"``) and are skipped otherwise.
``--quick`` uses small sizes and few rounds (under a minute once the caches
are warm).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

if "--cpu-time" in sys.argv:           # must be set before numba (and jax, torch) are imported
    os.environ["NUMBA_NUM_THREADS"] = "1"
    os.environ["DIFSCI_BENCH_ONE_THREAD"] = "1"      # benchmarks/peers: torch.set_num_threads(1)
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from numba import prange

from benchmarks import harness
from benchmarks.harness import Result, ResultMismatch

WORKLOADS = ("saxpy", "stencil", "scatter", "wave", "mass_spring", "pinn")
# (rounds, seconds per case after which no more rounds are added)
BUDGET = {"quick": (5, 3.0), "full": (15, 40.0)}


def environment() -> list[str]:
    import numba
    import numpy

    import difsci
    try:
        commit = subprocess.run(["git", "-C", str(_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, check=False,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(_ROOT), "status", "--porcelain", "--", "difsci"],
                               capture_output=True, check=False, text=True, timeout=10).stdout.strip()
        commit += " (+ uncommitted changes under difsci/)" if dirty else ""
    except Exception:  # noqa: BLE001
        commit = "?"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    layer = "?"
    try:
        numba.njit(parallel=True)(_probe)(10)
        layer = numba.threading_layer()
    except Exception:  # noqa: BLE001, S110
        pass
    return [
        f"date: {datetime.datetime.now().isoformat(timespec='seconds')}, load average at start {_load()}",
        f"machine: {os.cpu_count()} vCPU ({cpu}), numba threads {numba.get_num_threads()}, threading layer {layer}",
        (f"python {platform.python_version()}, numpy {numpy.__version__}, numba {numba.__version__}, "
         f"difsci {difsci.__version__} at {commit}"),
    ]


def _load() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1/5/15 min)"
    except OSError:
        return "?"


def _probe(n):
    s = 0
    for i in prange(n):
        s += i
    return s


def _bwd_fwd_rows(results: list[Result]) -> list[list[str]]:
    """backward / forward for each difsci implementation that has both a forward and a fwd+bwd case."""
    rows = []
    by_workload: dict[str, dict[str, Result]] = {}
    for r in results:
        by_workload.setdefault(r.case.workload, {})[r.case.variant] = r
    for wl, variants in by_workload.items():
        fwd = next((v for k, v in variants.items() if k.startswith("forward")), None)
        fb = next((v for k, v in variants.items() if k.startswith("fwd+bwd")), None)
        if fwd is None or fb is None:
            continue
        for label in fb.case.impls:
            if label in fwd.median and label in fb.median:
                f, t = fwd.median[label], fb.median[label]
                ratio = (t - f) / f
                target = 2.5 if label.startswith("difsci") else None
                if ratio <= 0:
                    verdict = "too noisy (fwd+bwd <= fwd)"
                elif target is None:
                    verdict = ""
                else:
                    verdict = f"ok (<= {target})" if ratio <= target else f"MISS ({ratio / target:.2f}x over {target})"
                rows.append([wl, "backward / forward", label, f"{ratio:.2f}", verdict,
                             f"bwd = fwd+bwd - fwd = {harness.fmt_time(t - f) if t > f else '-'}"])
    return rows


def main(quick: bool = False, only: list[str] | None = None, peers: bool = True, startup: bool = True,
         markdown: bool = False, cpu_time: bool = False) -> int:
    size = "quick" if quick else "full"
    rounds, max_s = BUDGET[size]
    clock = time.process_time if cpu_time else time.perf_counter
    if cpu_time:
        import numba
        if numba.config.NUMBA_NUM_THREADS != 1:
            print("--cpu-time needs NUMBA_NUM_THREADS=1 before numba is imported (run benchmarks/run.py --cpu-time)")
            return 2
        # peers run one thread too (see the top of this file); CPU time counts all their threads anyway
    print("difsci benchmarks" + (" (--quick)" if quick else "")
          + (" — ONE thread, CPU time (process_time): code quality, robust to other load" if cpu_time else ""))
    for line in environment():
        print("  " + line)
    found = {}
    if peers:
        from benchmarks import peers as peer_mod
        found = peer_mod.available()
    print("  peers: " + (", ".join(f"{k} {m.VERSION}" for k, m in found.items()) or "none importable") + "\n")
    failures: list[str] = []
    results: list[Result] = []
    t_all = time.perf_counter()
    for name in WORKLOADS:
        if only and name not in only:
            continue
        import importlib
        try:
            mod = importlib.import_module(f"benchmarks.workloads.{name}")
            cases = mod.cases(size, found)
        except Exception as e:  # noqa: BLE001
            failures.append(f"{name}: setup failed: {type(e).__name__}: {e}")
            traceback.print_exc()
            continue
        for case in cases:
            t0 = time.perf_counter()
            try:
                res = harness.run_case(case, repeats=rounds, warmup=2, max_seconds=max_s, clock=clock)
            except ResultMismatch as e:
                failures.append(f"{case.workload} / {case.variant}: WRONG RESULT: {e}")
                res = Result(case, errors={"verify": str(e)})
            results.append(res)
            for label, err in res.errors.items():
                if label.endswith(":traceback"):
                    continue
                if label != "verify":
                    failures.append(f"{case.workload} / {case.variant} / {label}: {err}")
                    print(res.errors.get(label + ":traceback", ""), file=sys.stderr)
            print(harness.format_table(harness.table_rows([res])).split("\n", 2)[-1])
            print(f"    ({res.rounds} rounds, {time.perf_counter() - t0:.1f} s)", flush=True)

    extra_rows: list[list[str]] = []
    if (startup and not only) or (only and "startup" in only):
        from benchmarks import startup as st
        try:
            res = harness.run_case(st.launch_case(quick), repeats=rounds + 4, warmup=2, max_seconds=max_s,
                                   clock=clock)
            results.append(res)
            ref = res.median.get("numba prange fn")
            ref_min = res.spread.get("numba prange fn", (None,))[0]
            for label in ("difsci", "difsci under Tape", "difsci kernel.adjoint(...)"):
                if label in res.median and ref is not None:
                    t, t_min = res.median[label], res.spread[label][0]
                    over = t_min - ref_min     # fastest rounds: the least disturbed on a busy machine
                    extra_rows.append(["launch overhead (1 element)", f"{label}: launch - numba call",
                                       harness.fmt_time(over), "10.00 us",
                                       "ok" if over <= 10e-6 else f"MISS ({over / 10e-6:.1f}x)",
                                       (f"fastest rounds: {harness.fmt_time(t_min)} vs prange fn called "
                                        f"directly {harness.fmt_time(ref_min)}; medians {harness.fmt_time(t)} vs "
                                        f"{harness.fmt_time(ref)}")])
            for row in ([] if cpu_time else st.measure_startup(quick)):
                tgt = row["target"]
                v = row["value"]
                extra_rows.append(["start-up", row["metric"], harness.fmt_time(v),
                                   "" if tgt is None else harness.fmt_time(tgt),
                                   "" if tgt is None else ("ok" if v <= tgt else f"MISS ({v / tgt:.1f}x)"),
                                   row["note"]])
        except Exception as e:  # noqa: BLE001
            failures.append(f"start-up measurements failed: {type(e).__name__}: {e}")
            traceback.print_exc()

    extra_rows = _bwd_fwd_rows(results) + extra_rows
    print("\n=== Summary: medians; ratios vs each case's reference (hand-written numba; difsci for the PINN step) ===")
    harness.print_table(results, markdown=markdown)
    if extra_rows:
        print()
        print(harness.format_table(extra_rows, ["what", "metric", "value", "target", "verdict", "note"],
                                   markdown=markdown))
    print(f"\ntotal {time.perf_counter() - t_all:.1f} s; load average at the end {_load()}")
    if failures:
        print("\nFAILURES:")
        for f in failures:
            print("  " + f)
        return 1
    return 0


def cli(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, few rounds")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {', '.join(WORKLOADS)}, startup")
    p.add_argument("--no-peers", action="store_true", help="skip jax etc. even if importable")
    p.add_argument("--no-startup", action="store_true", help="skip the start-up / launch-overhead measurements")
    p.add_argument("--markdown", action="store_true", help="print the summary as Markdown tables")
    p.add_argument("--cpu-time", action="store_true",
                   help="one numba thread, CPU time instead of wall time: compares the generated code itself, "
                        "robust to other processes on a busy machine (no start-up measurements; peers one thread)")
    a = p.parse_args(argv)
    only = a.only.split(",") if a.only else None
    return main(quick=a.quick, only=only, peers=not a.no_peers, startup=not a.no_startup, markdown=a.markdown,
                cpu_time=a.cpu_time)


if __name__ == "__main__":
    sys.exit(cli())
