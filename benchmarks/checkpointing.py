"""ds.Rollout benchmark (issue 8): memory and time of a long 2-D wave simulation's gradient.

    python benchmarks/checkpointing.py [--n 256] [--steps 20000] [--checkpoints 32] [--store-all-steps 1000]

The gradient of mean((h_T - target)^2) with respect to the initial field (h_0, h_1), on an n x n grid,
with the kernels of examples/physics/wave_long.py.
Each configuration runs in a child process so that its peak memory (``resource.getrusage`` ru_maxrss)
is its own:

* ``plain``: the forward run with no Tape: the per-step forward cost F;
* ``all``: ``checkpoints=None`` (every state stored) over ``--store-all-steps`` steps (the full run
  would need steps x state bytes, reported, which may not fit): the per-step backward cost B
  (a recorded re-run of the step plus its adjoint) and the memory per stored step;
* ``ckpt``: ``checkpoints=C`` over all the steps.

The model for ``ckpt`` is  (forward steps outside the adjoints) x F + steps x B,  with the forward
step count that the binomial schedule predicts (``difsci.rollout.predicted_forward_steps``).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _child(cfg: dict) -> dict:
    import numpy as np

    import difsci as ds
    from difsci.rollout import predicted_forward_steps

    from difsci import cli
    # the kernels of examples/physics/wave_long.py: the leapfrog step and the mismatch loss
    ex = cli.load_module(cli.EXAMPLES_DIR / "wave_long.py", "difsci_examples_wave_long")
    wave_step, field_loss = ex.leapfrog, ex.mismatch

    n, steps, mode = cfg["n"], cfg["steps"], cfg["mode"]
    x, y = np.mgrid[0:n, 0:n] / (n - 1.0)
    h0 = np.exp(-((x - 0.4) ** 2 + (y - 0.5) ** 2) / 0.005)
    hp = ds.array(h0, requires_grad=True)
    h = ds.array(h0, requires_grad=True)
    target = ds.array(np.exp(-((x - 0.6) ** 2 + (y - 0.45) ** 2) / 0.01) * 0.1)
    loss = ds.zeros((), requires_grad=True)

    def step(t, hp, h, hp2, h2):
        wave_step(hp, h, hp2, h2, 0.2)

    # compile everything on a 3-step rollout first (not timed, not in the counts)
    warm = ds.Rollout(step, state=[hp, h], steps=3, checkpoints=1)
    with ds.Tape() as tape:
        warm.run()
        field_loss(warm.state[1], target, loss)
    tape.backward(loss)
    hp.zero_grad(), h.zero_grad(), loss.fill(0)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    ck = None if mode == "all" else cfg.get("checkpoints")
    sim = ds.Rollout(step, state=[hp, h], steps=steps, checkpoints=ck)
    out = {"mode": mode, "n": n, "steps": steps, "checkpoints": ck, "state_bytes": sim.state_bytes}
    if mode == "plain":
        t0 = time.perf_counter()
        sim.run()
        out["run_s"] = time.perf_counter() - t0
        out["F"] = out["run_s"] / steps
    else:
        t0 = time.perf_counter()
        with ds.Tape() as tape:
            sim.run()
            field_loss(sim.state[1], target, loss)
        t1 = time.perf_counter()
        tape.backward(loss)
        t2 = time.perf_counter()
        out.update(run_s=t1 - t0, backward_s=t2 - t1, stats=sim.stats,
                   predicted_forward_steps=predicted_forward_steps(steps, ck),
                   grad_norm=float(np.linalg.norm(h.grad.numpy()) + np.linalg.norm(hp.grad.numpy())),
                   loss=float(loss.numpy()))
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["rss_after_compile"] = rss0
    return out


def run_child(cfg: dict) -> dict:
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(cfg)],
                       capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"child {cfg} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--checkpoints", type=int, default=32)
    ap.add_argument("--store-all-steps", type=int, default=1000,
                    help="steps of the checkpoints=None run (per-step costs and memory per stored step)")
    ap.add_argument("--child")
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(_child(json.loads(a.child))))
        return {}
    MB = 2.0 ** 20
    n, N, C = a.n, a.steps, a.checkpoints
    print(f"2-D wave {n}x{n}, gradient w.r.t. the initial field (load: {os.getloadavg()[0]:.2f})", flush=True)
    plain = run_child({"mode": "plain", "n": n, "steps": min(N, 4 * a.store_all_steps)})
    F = plain["F"]
    print(f"  forward only ({plain['steps']} steps): F = {F * 1e6:.1f} us/step", flush=True)
    full = run_child({"mode": "all", "n": n, "steps": a.store_all_steps})
    Na = full["steps"]
    B = (full["backward_s"] - 0.0) / Na
    per_step_mem = (full["peak_rss"] - full["rss_after_compile"]) / Na
    all_bytes = N * full["state_bytes"]
    print(f"  checkpoints=None ({Na} steps): run {full['run_s']:.2f} s, backward {full['backward_s']:.2f} s "
          f"-> B = {B * 1e6:.1f} us/step; peak RSS {full['peak_rss'] / MB:.0f} MiB "
          f"({per_step_mem / MB:.2f} MiB per stored step; state {full['state_bytes'] / MB:.2f} MiB)", flush=True)
    ck = run_child({"mode": "ckpt", "n": n, "steps": N, "checkpoints": C})
    st = ck["stats"]
    fwd_outside = st["forward_steps"] - st["adjoint_steps"]        # the leaves' re-runs are inside B
    model = fwd_outside * F + N * B
    measured = ck["run_s"] + ck["backward_s"]
    res = {
        "n": n, "steps": N, "checkpoints": C, "F_us": F * 1e6, "B_us": B * 1e6,
        "store_all_bytes_predicted": all_bytes, "store_all_peak_rss_measured_steps": Na,
        "store_all_peak_rss": full["peak_rss"], "ckpt_peak_rss": ck["peak_rss"],
        "ckpt_rss_after_compile": ck["rss_after_compile"], "ckpt_snapshot_bytes": st["max_snapshot_bytes"],
        "forward_steps": st["forward_steps"], "predicted_forward_steps": ck["predicted_forward_steps"],
        "recomputed_steps": st["forward_steps"] - N, "time_s": measured, "model_s": model,
        "time_over_model": measured / model,
        "store_all_over_ckpt_memory": (all_bytes + ck["rss_after_compile"]) / ck["peak_rss"],
    }
    print(f"  checkpoints={C} ({N} steps): run {ck['run_s']:.2f} s + backward {ck['backward_s']:.2f} s = "
          f"{measured:.2f} s; model {model:.2f} s -> {measured / model:.2f}x", flush=True)
    print(f"    forward steps executed {st['forward_steps']} (predicted {ck['predicted_forward_steps']}), "
          f"of which {st['adjoint_steps']} recorded re-runs before the adjoints; "
          f"snapshots {st['max_snapshots']} = {st['max_snapshot_bytes'] / MB:.1f} MiB", flush=True)
    print(f"    peak RSS {ck['peak_rss'] / MB:.0f} MiB (after compile {ck['rss_after_compile'] / MB:.0f} MiB) vs "
          f"storing every step: {all_bytes / MB:.0f} MiB of states + the same base "
          f"-> {res['store_all_over_ckpt_memory']:.0f}x less", flush=True)
    return res


if __name__ == "__main__":
    main()
