"""Seconds of retraining and ReMI under each thread setting, on an idle machine and beside a competing
CPU-bound process: the evidence for the thread policy (remi/runtime/device.py `configure_threads`;
BENCHMARKS.md, "Threads under contention").

    remi benchmark threads [--limit-seconds 120] [--workloads retrain remi] [--out FILE.json]
        (after `remi run`; uses its artifacts)

Settings: a fixed thread count (1, or one per available core) x OpenMP wait policy (the runtime's
default, which spins a while before sleeping, or PASSIVE, which sleeps at once), and `auto`, the
pipeline's own policy (its choice at the start, and its re-check each epoch). Each workload runs
in a fresh process per setting, because the OpenMP runtime reads OMP_WAIT_POLICY once, when torch
loads it. The competitor is a Python busy loop, one
core's worth of load, as another job on a shared runner; it is started before and stopped (by its
process group) after each setting under load. A run still going after --limit-seconds is stopped and
reported as such (a collapse can take 30x longer than the idle run). `--workloads remi` alone checks
every setting in a fraction of the time (ReMI is a few seconds; the tests run it that way).
"""

import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from remi.runtime.files import write_json

WORKLOADS = ("retrain", "remi")
AUTO = "auto"
BUSY_LOOP = "while True:\n    pass\n"
WORKER_STARTUP_SECONDS = 15  # imports and loading the task, outside the timed call


@dataclass(frozen=True)
class Row:
    load: str
    threads: str  # a count, or "auto"
    wait_policy: str
    seconds: dict[str, float | None]  # per workload; None: stopped at the limit
    threads_used: dict[str, int | None]  # per workload: what `auto` chose


def _settings(cores: int) -> list[tuple[str, str]]:
    fixed = [(str(n), wait) for n in sorted({1, cores}) for wait in ("default", "PASSIVE")]
    return [*fixed, (AUTO, "default")]


def _measure(method: str, threads: str, wait_policy: str, limit_seconds: float) -> tuple[float, int] | None:
    """(seconds, threads used) of one workload in a fresh process; None if stopped at the limit."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "REMI_THREADS")}
    if wait_policy != "default":
        env["OMP_WAIT_POLICY"] = wait_policy
    worker = subprocess.Popen([sys.executable, "-m", "remi.benchmarks.threads", method, threads], env=env,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        output, _ = worker.communicate(timeout=limit_seconds + WORKER_STARTUP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        return None
    if worker.returncode != 0:
        raise RuntimeError(f"the {method} worker failed (exit {worker.returncode}); run `remi run` first")
    measured = json.loads(output.strip().splitlines()[-1])
    return measured["seconds"], measured["threads"]


def benchmark_threads(limit_seconds: float, out: Path | None, workloads: tuple[str, ...] = WORKLOADS) -> None:
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} cores; workloads in fresh processes; a run still going after {limit_seconds:.0f} s is "
          "stopped", flush=True)
    rows = []
    for load in ("idle", "one competing process"):
        for threads, wait_policy in _settings(cores):
            competitor = None
            if load != "idle":
                competitor = subprocess.Popen([sys.executable, "-c", BUSY_LOOP], start_new_session=True)
            try:
                measured = {m: _measure(m, threads, wait_policy, limit_seconds) for m in workloads}
            finally:
                if competitor:
                    os.killpg(competitor.pid, signal.SIGKILL)
                    competitor.wait()
            row = Row(load, threads, wait_policy, {m: v[0] if v else None for m, v in measured.items()},
                      {m: v[1] if v else None for m, v in measured.items()})
            rows.append(row)
            print(f"{load:22s} threads {threads:4s}  wait {wait_policy:8s}  " + "  ".join(
                f"{m} {_shown(row, m, limit_seconds)}" for m in workloads), flush=True)
    _print_slowdowns(rows, workloads)
    if out:
        write_json(out, {"cores": cores, "limit_seconds": limit_seconds, "workloads": list(workloads),
                       "rows": [asdict(r) for r in rows]})


def _shown(row: Row, method: str, limit_seconds: float) -> str:
    seconds = row.seconds[method]
    if seconds is None:
        return f">{limit_seconds:.0f} s (stopped)"
    return f"{seconds:7.2f} s" + (f" ({row.threads_used[method]} threads)" if row.threads == AUTO else "")


def _print_slowdowns(rows: list[Row], workloads: tuple[str, ...]) -> None:
    """Loaded over idle seconds of the same setting, and for `auto` also over the fastest idle run."""
    idle = {(r.threads, r.wait_policy): r.seconds for r in rows if r.load == "idle"}
    fastest = {m: min(v for s in idle.values() if (v := s[m]) is not None) for m in workloads}
    print("\nslow-down under one competing process (seconds loaded / seconds idle, same setting):")
    for row in rows:
        if row.load == "idle":
            continue
        base = idle[(row.threads, row.wait_policy)]
        versus_fastest = ("; over the fastest idle setting: " + "  ".join(
            f"{m} {_ratio(row.seconds[m], fastest[m])}" for m in workloads)) if row.threads == AUTO else ""
        print(f"  threads {row.threads:4s}  wait {row.wait_policy:8s}  "
              + "  ".join(f"{m} {_ratio(row.seconds[m], base[m])}" for m in workloads) + versus_fastest)


def _ratio(loaded: float | None, idle: float | None) -> str:
    return f"x{loaded / idle:.2f}" if loaded is not None and idle else "n/a (stopped at the limit)"


def _worker(method: str, threads: str) -> None:
    from remi.data.datasets import load_dataset
    from remi.pipeline.params import load_params
    from remi.pipeline.tasks import load_task
    from remi.runtime.device import THREADS_ENV, compute_device, configure_threads
    from remi.unlearning import run_method

    params = load_params()
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    device = compute_device()
    task = load_task(params, dataset, method, device)
    # As a stage does: the policy decides once the process is ready to compute (and, for `auto`, looks
    # again each epoch); a fixed setting is REMI_THREADS, which the policy leaves alone.
    if threads != AUTO:
        os.environ[THREADS_ENV] = threads
    used = configure_threads()
    print(json.dumps({"seconds": run_method(method, task)[1], "threads": used}))


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
