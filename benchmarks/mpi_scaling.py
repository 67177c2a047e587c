"""Strong and weak scaling over MPI ranks (ds.distributed, issue 9).

    python benchmarks/mpi_scaling.py                 # the whole table (launches mpiexec itself)
    python benchmarks/mpi_scaling.py --quick         # small sizes, few repeats

Each row is timed in a fresh ``mpiexec -n P python benchmarks/mpi_scaling.py --worker ...``
with ``NUMBA_NUM_THREADS=1`` (one core per rank), so 1 and 2 ranks compare like with
like.  Workloads:

- **wave, weak**: the wave example's per-step kernels (examples/physics/wave.py,
  ``DistributedWave``) with each rank holding 512 x 512 cells (global 512P x 512),
  T steps forward and the reverse sweep; one halo row each way per step and neighbour.
- **wave, strong**: a fixed 512 x 512 grid on P ranks.
- **PINN step**: ``PINN.loss_and_grad(distributed=True)`` of the Burgers PINN (4 x 20
  tanh, 1341 weights) on N collocation points shared by the ranks; one Allreduce of
  the gradient per step.
- **ping-pong / allreduce**: latency and bandwidth of the MPI transport (for the model).

Rounds: the configurations are run in turn, ``--rounds`` times (load from other jobs
on this machine hits them alike); each worker reports the median of its repeats, and
the table gives the median over rounds.  Efficiencies: weak t1/tP, strong t1/(P tP).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ workers (under mpiexec)
CPU = {}      # label -> median CPU seconds of this process per call (rank 0)


def _median_time(fn, repeats: int, label: str | None = None) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, all ranks starting together.

    With ``label``, also the median CPU time of the calls on this rank (``CPU[label]``):
    unlike the wall time, it does not grow when other jobs take this rank's core (it
    does include MPI's busy-polling while waiting for a slower neighbour)."""
    fn()                                            # warm-up (compiles on first use)
    ts, cs = [], []
    for _ in range(repeats):
        comm.Barrier()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        c1 = time.process_time()
        comm.Barrier()
        ts.append(time.perf_counter() - t0)
        cs.append(c1 - c0)
    if label:
        CPU[label] = statistics.median(cs)
    return statistics.median(ts)


def work_wave(rows_per_rank: int | None, n_global: int | None, m: int, T: int, repeats: int) -> dict:
    from difsci import cli
    wave = cli.load_module(cli.EXAMPLES_DIR / "wave.py", "difsci_examples_wave")
    n = n_global or rows_per_rank * comm.size
    sim = wave.DistributedWave(n=n, m=m, T=T)
    sim.h0.numpy()[...] = 0.01
    fwd = _median_time(sim.forward, repeats)
    fb = _median_time(sim.forward_backward, repeats, "fwd_bwd_cpu_s")
    # the halo exchanges alone (T + 1 per forward, as in the run)
    h = sim.h
    t_ex = _median_time(lambda: [sim.grid.exchange_halos(h[t]) for t in range(T + 1)], repeats)
    return {"n": n, "m": m, "T": T, "rows_local": sim.grid.n_local, "forward_s": fwd,
            "fwd_bwd_s": fb, "exchange_s": t_ex, "halo_bytes_per_exchange": 2 * m * 8}


def work_pinn(n_points: int, repeats: int) -> dict:
    import sympy as sp

    import difsci as ds
    t, x = sp.symbols("t x")
    u = sp.Function("u")
    net = ds.nn.MLP([2, 20, 20, 20, 20, 1], activation="tanh", seed=0)
    pinn = ds.nn.PINN(net, inputs=(t, x), outputs=(u,),
                      equations=[u(t, x).diff(t) + u(t, x) * u(t, x).diff(x)
                                 - sp.Rational(1, 100) / sp.pi * u(t, x).diff(x, 2)])
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, 100)
    pinn.add_condition(np.stack([0 * x0, x0], 1), -np.sin(np.pi * x0), output=u)
    X = ds.nn.box_samples([0, -1], [1, 1], n_points, "lhs", seed=0)
    step = _median_time(lambda: pinn.loss_and_grad(X, distributed=True), repeats, "step_cpu_s")
    flat = net.flat_parameters()
    t_ar = _median_time(lambda: ds.distributed.allreduce_grad(flat), repeats * 20)
    return {"points": n_points, "params": flat.size, "step_s": step, "allreduce_s": t_ar}


def work_pingpong(repeats: int) -> dict:
    out = {}
    for nbytes in (8, 4096, 1 << 20):
        buf = np.zeros(nbytes // 8)

        def pp(buf=buf):
            if comm.rank == 0:
                comm.Send(buf, 1)
                comm.Recv(buf, 1)
            elif comm.rank == 1:
                comm.Recv(buf, 0)
                comm.Send(buf, 0)
        out[str(nbytes)] = _median_time(lambda: [pp() for _ in range(50)], repeats) / 100   # one way
    return {"one_way_s": out}


def worker(args) -> None:
    global comm
    import difsci as ds
    comm = ds.distributed.init(threads=None)         # NUMBA_NUM_THREADS from the driver
    if args.worker == "wave":
        res = work_wave(args.rows, args.n, args.m, args.T, args.repeats)
    elif args.worker == "pinn":
        res = work_pinn(args.points, args.repeats)
    else:
        res = work_pingpong(args.repeats)
    res.update(CPU, kind=args.worker, ranks=comm.size)
    if comm.rank == 0:
        print("RESULT " + json.dumps(res), flush=True)


# ------------------------------------------------------------------ driver
def launch(ranks: int, wargs: list[str], threads: int = 1, copies: int = 1) -> dict:
    """Run one worker job on ``ranks`` ranks; with ``copies`` > 1, that many independent
    jobs at once (the control: what the machine gives P processes that never communicate)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "MPI_LOCAL"))}
    env["NUMBA_NUM_THREADS"] = str(threads)
    cmd = [shutil.which("mpiexec") or "mpiexec", "-n", str(ranks), sys.executable, "-m", "mpi4py",
           str(Path(__file__).resolve()), "--worker"] + wargs
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(copies)]
    found = []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        found += [json.loads(ln[7:]) for ln in out.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{out[-2000:]}\n{err[-4000:]}")
    if len(found) != copies:
        raise RuntimeError(f"{' '.join(cmd)} printed no result")
    res = found[0]
    for key in ("forward_s", "fwd_bwd_s", "fwd_bwd_cpu_s", "step_s", "step_cpu_s"):
        if key in res:                                  # the slower copy
            res[key] = max(r[key] for r in found)
    return res


def configs(quick: bool):
    m, rows, T = (128, 128, 20) if quick else (512, 512, 50)
    pts = 1000 if quick else 8000
    rep = "3" if quick else "5"
    wave = ["wave", "--m", str(m), "--T", str(T), "--repeats", rep]
    return [
        ("wave weak 1 rank", 1, wave + ["--rows", str(rows)], 1),
        ("wave weak 2 ranks", 2, wave + ["--rows", str(rows)], 1),
        ("wave weak 2 x 1 rank, independent", (1, 2), wave + ["--rows", str(rows)], 1),
        ("wave strong 1 rank", 1, wave + ["--n", str(rows)], 1),
        ("wave strong 2 ranks", 2, wave + ["--n", str(rows)], 1),
        ("wave strong 1 rank x 2 threads", 1, wave + ["--n", str(rows)], 2),
        ("pinn 1 rank", 1, ["pinn", "--points", str(pts), "--repeats", rep], 1),
        ("pinn 2 ranks", 2, ["pinn", "--points", str(pts), "--repeats", rep], 1),
        ("pingpong", 2, ["pingpong", "--repeats", rep], 1),
    ]


def drive(quick: bool, rounds: int) -> dict:
    results: dict[str, list] = {}
    for r in range(rounds):
        load = os.getloadavg()[0]
        for name, ranks, wargs, threads in configs(quick):
            ranks, copies = ranks if isinstance(ranks, tuple) else (ranks, 1)
            res = launch(ranks, wargs, threads, copies)
            res["load"] = load
            results.setdefault(name, []).append(res)
            print(f"round {r + 1}/{rounds}  {name:32s} {_brief(res)}  (load {load:.2f})", flush=True)
    return results


def _brief(res: dict) -> str:
    if res["kind"] == "wave":
        return f"fwd {res['forward_s'] * 1e3:8.1f} ms  fwd+bwd {res['fwd_bwd_s'] * 1e3:8.1f} ms"
    if res["kind"] == "pinn":
        return f"step {res['step_s'] * 1e3:8.2f} ms  allreduce {res['allreduce_s'] * 1e6:6.1f} us"
    return "one-way " + ", ".join(f"{b} B {t * 1e6:.1f} us" for b, t in res["one_way_s"].items())


def table(results: dict) -> str:
    fields = ("forward_s", "fwd_bwd_s", "fwd_bwd_cpu_s", "exchange_s", "step_s", "step_cpu_s", "allreduce_s")
    med = {k: {f: statistics.median(r[f] for r in v) for f in fields if f in v[0]} for k, v in results.items()}
    lines = [("| workload | ranks x threads | size | forward | fwd+bwd (or step) | efficiency "
              "| CPU s per rank | CPU efficiency |"), "|---|---|---|---|---|---|---|---|"]

    def row(name, label, size, base=None, strong=1, cpu_ranks=None):
        """``strong``: the workers sharing the work of ``base``; ``cpu_ranks``: the processes whose
        CPU time the ``CPU s`` column counts (one per rank; 1 for a multi-threaded rank)."""
        m = med[name]
        key = "fwd_bwd_s" if "fwd_bwd_s" in m else "step_s"
        ckey = key.replace("_s", "_cpu_s")
        eff = "" if base is None else f"{med[base][key] / (strong * m[key]):.0%}"
        cdiv = strong if cpu_ranks is None else cpu_ranks
        ceff = "" if base is None else f"{med[base][ckey] / (cdiv * m[ckey]):.0%}"
        fwd = f"{m['forward_s'] * 1e3:.1f} ms" if "forward_s" in m else ""
        lines.append(f"| {label} | {size} | {fwd} | {m[key] * 1e3:.1f} ms | {eff} | {m[ckey] * 1e3:.1f} ms "
                     f"| {ceff} |")
    w = results["wave weak 1 rank"][0]
    s = results["wave strong 1 rank"][0]
    p = results["pinn 1 rank"][0]
    row("wave weak 1 rank", "wave, weak", f"1 x 1 | {w['n']} x {w['m']}, T={w['T']}")
    row("wave weak 2 ranks", "wave, weak", f"2 x 1 | {2 * w['n']} x {w['m']}", "wave weak 1 rank")
    row("wave weak 2 x 1 rank, independent", "control: 2 independent 1-rank runs at once",
        f"2 x (1 x 1) | {w['n']} x {w['m']} each", "wave weak 1 rank")
    row("wave strong 1 rank", "wave, strong", f"1 x 1 | {s['n']} x {s['m']}")
    row("wave strong 2 ranks", "wave, strong", f"2 x 1 | {s['n']} x {s['m']}", "wave strong 1 rank", 2)
    row("wave strong 1 rank x 2 threads", "wave, strong", f"1 x 2 | {s['n']} x {s['m']}",
        "wave strong 1 rank", 2, cpu_ranks=1)
    row("pinn 1 rank", "PINN step", f"1 x 1 | {p['points']} pts, {p['params']} weights")
    row("pinn 2 ranks", "PINN step", f"2 x 1 | {p['points']} pts", "pinn 1 rank", 2)
    ex = statistics.median(r["exchange_s"] for r in results["wave weak 2 ranks"]) / (w["T"] + 1)
    ar = med["pinn 2 ranks"]["allreduce_s"]
    pp = {b: statistics.median(r["one_way_s"][b] for r in results["pingpong"])
          for b in results["pingpong"][0]["one_way_s"]}
    lines.append("")
    lines.append(f"halo exchange (2 ranks, {w['m']} doubles each way): {ex * 1e6:.1f} us; "
                 f"gradient Allreduce ({p['params']} doubles, 2 ranks): {ar * 1e6:.1f} us; "
                 "ping-pong one-way: " + ", ".join(f"{b} B {t * 1e6:.1f} us" for b, t in pp.items()))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=None, help="also save the raw results here")
    ap.add_argument("--worker", choices=("wave", "pinn", "pingpong"), default=None)
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--m", type=int, default=512)
    ap.add_argument("--T", type=int, default=50)
    ap.add_argument("--points", type=int, default=8000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    t0 = time.time()
    results = drive(args.quick, args.rounds)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print()
    print(table(results))
    print(f"\n({time.time() - t0:.0f} s; load average at the end {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
