"""Seconds of retraining and ReMI under each thread setting, on an idle machine and beside a competing
CPU-bound process, to choose the thread policy (BENCHMARKS.md, "Threads under contention").

    remi benchmark threads [--limit-seconds 120] [--out FILE.json]   (after `remi run`; uses its artifacts)

Each workload runs in a fresh process per setting, because the OpenMP runtime reads OMP_WAIT_POLICY
once, when torch loads it: intra-op threads (1, or one per available core) x wait policy (the
runtime's default, which spins a while before sleeping, or PASSIVE, which sleeps at once). The
competitor is a Python busy loop, one core's worth of load, as another job on a shared runner; it is
started before and stopped (by its process group) after each setting under load. A run that has not
finished after --limit-seconds is stopped and reported as such (a collapse can take 30x longer).
"""

import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

WORKLOADS = ("retrain", "remi")
WAIT_POLICIES = ("default", "PASSIVE")
BUSY_LOOP = "while True:\n    pass\n"
WORKER_STARTUP_SECONDS = 15  # imports and loading the task, outside the timed call


@dataclass(frozen=True)
class Row:
    load: str
    threads: int
    wait_policy: str
    seconds: dict[str, float | None]  # per workload; None: stopped at the limit


def _measure(method: str, threads: int, wait_policy: str, limit_seconds: float) -> float | None:
    """Seconds of one workload in a fresh process with this setting; None if stopped at the limit."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if wait_policy != "default":
        env["OMP_WAIT_POLICY"] = wait_policy
    worker = subprocess.Popen([sys.executable, "-m", "remi.benchmarks.threads", method, str(threads)], env=env,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        output, _ = worker.communicate(timeout=limit_seconds + WORKER_STARTUP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        return None
    if worker.returncode != 0:
        raise RuntimeError(f"the {method} worker failed (exit {worker.returncode}); run `remi run` first")
    return float(output.strip().splitlines()[-1])


def _competitor() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", BUSY_LOOP], start_new_session=True)


def benchmark_threads(limit_seconds: float, out: Path | None) -> None:
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} cores; workloads in fresh processes; a run still going after {limit_seconds:.0f} s is "
          "stopped", flush=True)
    rows = []
    for load in ("idle", "one competing process"):
        for threads in sorted({1, cores}):
            for wait_policy in WAIT_POLICIES:
                competitor = _competitor() if load != "idle" else None
                try:
                    seconds = {m: _measure(m, threads, wait_policy, limit_seconds) for m in WORKLOADS}
                finally:
                    if competitor:
                        os.killpg(competitor.pid, signal.SIGKILL)
                        competitor.wait()
                rows.append(Row(load, threads, wait_policy, seconds))
                print(f"{load:22s} threads {threads}  wait {wait_policy:8s}  "
                      + "  ".join(f"{m} {_shown(seconds[m], limit_seconds)}" for m in WORKLOADS), flush=True)
    idle = {(r.threads, r.wait_policy): r.seconds for r in rows if r.load == "idle"}
    print("\nslow-down under one competing process (seconds loaded / seconds idle, same setting):")
    for row in rows:
        if row.load != "idle":
            base = idle[(row.threads, row.wait_policy)]
            print(f"  threads {row.threads}  wait {row.wait_policy:8s}  " + "  ".join(
                f"{m} {_ratio(row.seconds[m], base[m])}" for m in WORKLOADS))
    if out:
        out.write_text(json.dumps({"cores": cores, "limit_seconds": limit_seconds,
                                   "rows": [asdict(r) for r in rows]}, indent=2) + "\n")


def _ratio(loaded: float | None, idle: float | None) -> str:
    return f"x{loaded / idle:.2f}" if loaded is not None and idle else "n/a (stopped at the limit)"


def _shown(seconds: float | None, limit_seconds: float) -> str:
    return f"{seconds:7.2f} s" if seconds is not None else f">{limit_seconds:.0f} s (stopped)"


def _worker(method: str, threads: int) -> None:
    import torch

    from remi.data.datasets import load_dataset
    from remi.pipeline.params import load_params
    from remi.pipeline.tasks import load_task
    from remi.runtime.device import compute_device
    from remi.unlearning import run_method

    torch.set_num_threads(threads)
    params = load_params()
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    device = compute_device()
    print(run_method(method, load_task(params, dataset, method, device))[1])


if __name__ == "__main__":
    _worker(sys.argv[1], int(sys.argv[2]))
