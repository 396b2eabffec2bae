"""Where the last `remi run` spent its seconds, per stage, start-up included (BENCHMARKS.md, "Whole
pipeline").

    remi benchmark profile [--out FILE.json]   (on the machine that ran `remi run`, before a reboot)

Read from the MLflow store: the pipeline's parent run and one child run per stage process. For each
stage process: `start-up` is from the process's start (its `process.start_ticks` tag, clock ticks
since boot) to its MLflow run's start (interpreter, imports, params, data and model loading); `in run`
is the MLflow run itself (the stage's work and its logging); `gap after` is from the run's end to the
next stage process's start (the process exiting, DVC hashing outputs, writing dvc.lock, and stages
that log no run, such as check_params). Every second of the pipeline's wall time is in one column.
"""

import os
import socket
import time
from pathlib import Path

from remi.errors import UserError
from remi.pipeline import tracking
from remi.runtime.files import write_json
from remi.runtime.process_identity import HOST_TAG, STARTED_TAG


def profile_last_run(out: Path | None) -> None:
    mlflow = tracking.configured_mlflow()
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(tracking.experiment_name())
    finished = "tags.stage = 'pipeline' and attributes.status = 'FINISHED'"
    parents = client.search_runs([experiment.experiment_id], finished, order_by=["attributes.start_time DESC"],
                                 max_results=1) if experiment else []
    if not parents:
        raise UserError("no finished `remi run` in the MLflow store: run the pipeline first")
    parent = parents[0]
    if parent.data.tags.get(HOST_TAG) != socket.gethostname():
        raise UserError(f"the last pipeline ran on {parent.data.tags.get(HOST_TAG)}: profile it there")
    stages = sorted(client.search_runs([experiment.experiment_id],
                                       f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=100),
                    key=lambda run: run.info.start_time)
    boot = _boot_seconds()
    ticks = os.sysconf("SC_CLK_TCK")
    rows = []
    for index, run in enumerate(stages):
        process_start = boot + int(run.data.tags[STARTED_TAG]) / ticks
        next_start = (boot + int(stages[index + 1].data.tags[STARTED_TAG]) / ticks if index + 1 < len(stages)
                      else parent.info.end_time / 1000)
        rows.append({"stage": run.info.run_name, "threads": run.data.tags.get("threads"),
                     "start_up": run.info.start_time / 1000 - process_start,
                     "in_run": (run.info.end_time - run.info.start_time) / 1000,
                     "gap_after": next_start - run.info.end_time / 1000})
    first_start = boot + int(stages[0].data.tags[STARTED_TAG]) / ticks if stages else parent.info.end_time / 1000
    before_first = first_start - parent.info.start_time / 1000
    total = (parent.info.end_time - parent.info.start_time) / 1000
    _print(rows, before_first, total, parent.info.run_id)
    if out:
        write_json(out, {"pipeline_run": parent.info.run_id, "pipeline_seconds": total,
                       "before_first_stage": before_first, "stages": rows})


def _boot_seconds() -> float:
    """The boot's wall time to 10 ms (/proc/stat's btime is whole seconds: up to 1 s off)."""
    uptime = Path("/proc/uptime")
    if not uptime.exists():
        raise UserError("no /proc/uptime: the profile needs Linux")
    return time.time() - float(uptime.read_text().split()[0])


def _print(rows: list[dict], before_first: float, total: float, run_id: str) -> None:
    print(f"pipeline run {run_id}: {total:.1f} s wall\n")
    print(f"{'stage':34s} {'threads':>7s} {'start-up':>9s} {'in run':>9s} {'gap after':>9s}")
    print(f"{'(before the first stage)':34s} {'':>7s} {'':>9s} {'':>9s} {before_first:9.1f}")
    for row in rows:
        print(f"{row['stage']:34s} {row['threads'] or '':>7s} {row['start_up']:9.1f} {row['in_run']:9.1f} "
              f"{row['gap_after']:9.1f}")
    sums = {key: sum(row[key] for row in rows) for key in ("start_up", "in_run", "gap_after")}
    print(f"{'total':34s} {'':>7s} {sums['start_up']:9.1f} {sums['in_run']:9.1f} "
          f"{sums['gap_after'] + before_first:9.1f}")
