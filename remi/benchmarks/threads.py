"""Seconds of retraining and ReMI under each thread setting, on an idle machine and beside a competing
CPU-bound process, to choose the thread policy (BENCHMARKS.md, "Threads under contention").

    remi benchmark threads [--out FILE.json]     (after `remi run`; uses its artifacts)

Each setting runs in a fresh process, because the OpenMP runtime reads OMP_WAIT_POLICY once, when
torch loads it: intra-op threads (1, or one per available core) x wait policy (the runtime's default,
which spins a while before sleeping, or PASSIVE, which sleeps at once). The competitor is a Python
busy loop, one core's worth of load, as another job on a shared runner; it is started before and
stopped (by its process group) after each setting under load.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

WORKLOADS = ("retrain", "remi")
WAIT_POLICIES = ("default", "PASSIVE")
BUSY_LOOP = "while True:\n    pass\n"


def _measure(threads: int, wait_policy: str) -> dict[str, float]:
    """Run the workloads in a fresh process with this setting; their seconds."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if wait_policy != "default":
        env["OMP_WAIT_POLICY"] = wait_policy
    result = subprocess.run([sys.executable, "-m", "remi.benchmarks.threads", str(threads)], env=env,
                            capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _with_competitor(measure):
    competitor = subprocess.Popen([sys.executable, "-c", BUSY_LOOP], start_new_session=True)
    try:
        return measure()
    finally:
        os.killpg(competitor.pid, signal.SIGKILL)
        competitor.wait()


def benchmark_threads(out: Path | None) -> None:
    cores = len(os.sched_getaffinity(0))
    rows = []
    for load in ("idle", "one competing process"):
        for threads in sorted({1, cores}):
            for wait_policy in WAIT_POLICIES:
                def measure(threads=threads, wait_policy=wait_policy):
                    return _measure(threads, wait_policy)

                seconds = measure() if load == "idle" else _with_competitor(measure)
                rows.append({"load": load, "threads": threads, "wait_policy": wait_policy, **seconds})
                print(f"{load:22s} threads {threads}  wait {wait_policy:8s}  "
                      + "  ".join(f"{w} {seconds[w]:7.2f} s" for w in WORKLOADS), flush=True)
    idle = {(r["threads"], r["wait_policy"]): r for r in rows if r["load"] == "idle"}
    print("\nslow-down under one competing process (seconds loaded / seconds idle, same setting):")
    for row in rows:
        if row["load"] != "idle":
            base = idle[(row["threads"], row["wait_policy"])]
            print(f"  threads {row['threads']}  wait {row['wait_policy']:8s}  "
                  + "  ".join(f"{w} x{row[w] / base[w]:.2f}" for w in WORKLOADS))
    if out:
        out.write_text(json.dumps({"cores": cores, "rows": rows}, indent=2) + "\n")


def _worker(threads: int) -> None:
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
    seconds = {}
    for method in WORKLOADS:
        seconds[method] = run_method(method, load_task(params, dataset, method, device))[1]
    print(json.dumps(seconds))


if __name__ == "__main__":
    _worker(int(sys.argv[1]))
