"""Run `dvc repro` as one MLflow parent run; every stage logs a child run under it.

    python tools/run_pipeline.py [dvc repro arguments...]

params.yaml is read and validated first, before DVC parses it (a hostile file, e.g. a YAML alias
bomb, would hang DVC's own parser) and before any stage deletes its outputs. Stage commands find
the project's interpreter through bin/python, whatever PATH holds.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from remi import tracking
from remi.io import sweep_stale_temps
from remi.layout import OUTPUT_ROOTS
from remi.params import load_params
from remi.process_identity import process_tags
from remi.stage_main import run_entry_point


def run_under_parent_run(command: list[str], run_name: str) -> int:
    """Run `command` (a dvc call) inside one MLflow parent run that every stage's run nests under."""
    tracking.quiet_telemetry()
    import mlflow

    mlflow.set_tracking_uri(tracking.tracking_uri())
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", tracking.EXPERIMENT))
    reaped = tracking.reap_orphaned_runs()
    if reaped:
        print(f"Marked {len(reaped)} MLflow run(s) of killed processes as KILLED.")
    tags = {"stage": "pipeline", "role": "pipeline", **tracking.code_identity(), **process_tags()}
    with mlflow.start_run(run_name=run_name, tags=tags) as run:
        started = time.perf_counter()
        env = os.environ | {tracking.PARENT_RUN_ENV: run.info.run_id}
        code = subprocess.call(command, env=env)
        seconds = time.perf_counter() - started
        mlflow.log_metric("pipeline_seconds", seconds)
        # Tagged after the run: dvc.lock now holds the hashes of what this run produced.
        mlflow.set_tags({f"final.{k}": v for k, v in tracking.code_identity().items()})
        print(f"{run_name} finished in {seconds:.1f} s with exit code {code}; MLflow run {run.info.run_id}")
        if code:
            mlflow.end_run(status="FAILED")
    return code


def main() -> int:
    load_params()
    sweep_stale_temps(OUTPUT_ROOTS)
    return run_under_parent_run([sys.executable, "-m", "dvc", "repro", *sys.argv[1:]], "dvc repro")


if __name__ == "__main__":
    run_entry_point(main)
