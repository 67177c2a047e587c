"""ds.distributed (issue 9): MPI data parallelism, domain decomposition, ensembles.

The MPI checks live in tests/mpi/*.py and run under ``mpiexec -n 2`` in a subprocess
(``python -m mpi4py`` aborts every rank when one fails, so a failure cannot hang);
each prints ``OK <name>`` from rank 0.  They are skipped, with the reason, where
mpi4py or ``mpiexec`` is missing (``pip install "difsci[mpi]"`` brings both).
The rest runs without MPI: error messages, the block partition, the CLI's refusal.
"""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from difsci.distributed import block

ROOT = Path(__file__).resolve().parent.parent
MPI_DIR = Path(__file__).resolve().parent / "mpi"
LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMI_FD", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK",
                 "MPI_LOCALNRANKS", "MPI_LOCALRANKID", "MV2_COMM_WORLD_SIZE", "I_MPI_HYDRA_HOST_FILE")


def _find_mpiexec() -> str | None:
    """``mpiexec`` on PATH, or next to this Python (where the mpich wheel puts it in a venv)."""
    beside = Path(sys.executable).parent / "mpiexec"
    return shutil.which("mpiexec") or (str(beside) if beside.exists() else None)


def _mpi_missing() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'difsci[mpi]')"
    if _find_mpiexec() is None:
        return "no `mpiexec` on PATH (pip install mpich, or a system MPI)"
    return None


needs_mpi = pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))


def _mpiexec(n: int) -> list[str]:
    cmd = [_find_mpiexec(), "-n", str(n)]
    version = subprocess.run([cmd[0], "--version"], capture_output=True, text=True, check=False).stdout
    if "Open MPI" in version or "OpenRTE" in version:      # Open MPI refuses root and >cores by default
        cmd[1:1] = ["--allow-run-as-root", "--oversubscribe"]
    return cmd


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    env.setdefault("NUMBA_NUM_THREADS", "1")
    return env


def mpirun(args: list[str], n: int = 2, timeout: float = 420) -> str:
    """Run ``mpiexec -n n <args>`` from the repository root; its stdout (fails on rc != 0)."""
    proc = subprocess.run(_mpiexec(n) + args, cwd=ROOT, capture_output=True, text=True, check=False,
                          timeout=timeout, env=_clean_env())
    assert proc.returncode == 0, f"rc {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout


def run_check(name: str, n: int = 2) -> str:
    out = mpirun([sys.executable, "-m", "mpi4py", str(MPI_DIR / f"{name}_check.py")], n)
    assert f"OK {name}" in out, out
    return out


@needs_mpi
def test_halo_exchange_and_collectives_pass_the_dot_product_test():
    run_check("halo")


@needs_mpi
def test_two_rank_wave_forward_and_gradient_equal_one_rank():
    run_check("wave")


@needs_mpi
def test_data_parallel_pinn_gradients_and_trajectory_equal_one_process():
    run_check("pinn")


@needs_mpi
def test_cli_runs_the_wave_example_on_two_ranks(tmp_path):
    png = tmp_path / "wave.png"
    out = mpirun([sys.executable, "-m", "difsci.cli", "run", "wave", "--size", "small", "--iters", "3",
                  "--plot", str(png)])
    assert "running wave on 2 MPI ranks" in out
    assert out.count("iter 3/3") == 1, out            # only rank 0 prints
    first = float(out.split("iter 1/3  loss ")[1].split()[0])
    final = float(out.split("final loss ")[1].split()[0])
    assert final < first
    assert png.stat().st_size > 10_000


# --------------------------------------------------------------- without mpiexec
def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False,
                          timeout=120, env=_clean_env())


def test_missing_mpi4py_is_a_clear_error():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "import difsci as ds\n"
            "try:\n    ds.distributed.init()\n"
            "except ds.DifsciError as e:\n    print('ERR', e)\n")
    out = _python(code).stdout
    assert "ERR ds.distributed needs mpi4py" in out and 'pip install "difsci[mpi]"' in out, out


@pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))
def test_init_outside_mpiexec_says_how_to_start():
    code = ("import difsci as ds\n"
            "try:\n    ds.distributed.init()\n"
            "except ds.distributed.DistributedError as e:\n    print('ERR', e)\n"
            "from mpi4py import MPI\n"
            "c = ds.distributed.init(comm=MPI.COMM_SELF)\n"
            "print('SELF', ds.distributed.rank, ds.distributed.size)\n")
    out = _python(code).stdout
    assert "ERR ds.distributed.init(): this process was not started by an MPI launcher" in out, out
    assert "mpiexec -n 2" in out and "SELF 0 1" in out, out


def test_cli_mpi_flag_outside_mpiexec_fails_clearly():
    proc = subprocess.run([sys.executable, "-m", "difsci.cli", "run", "wave", "--mpi", "--size", "small"],
                          cwd=ROOT, capture_output=True, text=True, check=False, timeout=120, env=_clean_env())
    assert proc.returncode == 2
    assert "difsci: --mpi:" in proc.stderr and "mpiexec -n 2" in proc.stderr, proc.stderr


def test_cli_refuses_mpi_for_examples_without_an_mpi_version():
    proc = subprocess.run([sys.executable, "-m", "difsci.cli", "run", "billiards", "--mpi"],
                          cwd=ROOT, capture_output=True, text=True, check=False, timeout=120, env=_clean_env())
    assert proc.returncode == 2 and "has no MPI version" in proc.stderr, proc.stderr


@pytest.mark.parametrize("n, parts", [(10, 1), (10, 3), (11, 2), (7, 7), (5, 8)])
def test_block_partition_covers_the_range_once(n, parts):
    blocks = [block(n, parts, k) for k in range(parts)]
    assert blocks[0][0] == 0 and blocks[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(blocks))
    sizes = [b - a for a, b in blocks]
    assert max(sizes) - min(sizes) <= 1
