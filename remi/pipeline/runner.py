"""Run `dvc repro` as one MLflow parent run; every stage logs a child run under it (`remi run`).
A dvc.lock cut short by a kill is replaced by the last complete one first, and DVC's lock table cut short
by a kill is cleared (remi/pipeline/dvc_locks.py).

params.yaml is read and validated first, before DVC parses it (a hostile file, e.g. a YAML alias
bomb, would hang DVC's own parser) and before any stage deletes its outputs. Stage commands find
the project's interpreter through bin/python, whatever PATH holds.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time

from remi.errors import UserError
from remi.pipeline import tracking
from remi.pipeline.dvc_locks import clear_cut_short_rwlock, keep_or_restore_lock
from remi.pipeline.layout import OUTPUT_ROOTS, TARGET_PURGE_RECORD, metrics_path
from remi.pipeline.params import load_params
from remi.pipeline.summary import summary_text
from remi.runtime.device import compute_device, threads_override
from remi.runtime.executors import check_executor_settings, worker_count
from remi.runtime.files import sweep_stale_temps
from remi.runtime.process_identity import process_tags
from remi.runtime.progress import mode_override


def run_under_parent_run(command: list[str], run_name: str) -> int:
    """Run `command` (a dvc call) inside one MLflow parent run that every stage's run nests under."""
    mlflow = tracking.configured_mlflow()
    reaped = tracking.reap_orphaned_runs()
    if reaped:
        print(f"Marked {len(reaped)} MLflow run(s) of killed processes as KILLED.")
    tags = {"stage": "pipeline", "role": "pipeline", **tracking.code_identity(), **process_tags()}
    with mlflow.start_run(run_name=run_name, tags=tags) as run:
        started = time.perf_counter()
        env = os.environ | {tracking.PARENT_RUN_ENV: run.info.run_id}
        code = _run_to_the_end(command, env)
        seconds = time.perf_counter() - started
        mlflow.log_metric("pipeline_seconds", seconds)
        # Tagged after the run: dvc.lock now holds the hashes of what this run produced.
        mlflow.set_tags({f"final.{k}": v for k, v in tracking.code_identity().items()})
        print(f"{run_name} finished in {seconds:.1f} s with exit code {code}; MLflow run {run.info.run_id}")
        if code:
            mlflow.end_run(status="FAILED")
    return code


STOP_GRACE_SECONDS = 30  # for DVC's stage processes to end their MLflow runs and remove their temp files


def _run_to_the_end(command: list[str], env: dict[str, str]) -> int:
    """`command`'s exit code. If this process is stopped first (SIGTERM from a scheduler or `kill`, Ctrl-C), the
    command and every process it started are stopped too (`_stop_tree`): a stage left running would go on
    writing outputs that DVC never records, beside the next run's."""
    process = subprocess.Popen(command, env=env)
    try:
        return process.wait()
    except BaseException:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the stopping short
        _stop_tree(process.pid)
        raise


def _stop_tree(pid: int) -> None:
    """SIGTERM to `pid` and its descendants, which a stage turns into a clean exit (its MLflow run FAILED, its
    temp files removed); SIGKILL to whatever is left after STOP_GRACE_SECONDS."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(tree, timeout=STOP_GRACE_SECONDS)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


def check_environment() -> None:
    """The REMI_* variables the stages read, checked before DVC deletes any stage's outputs (a stage would
    only stop on them once its outputs were gone)."""
    threads_override()
    mode_override()
    compute_device()
    check_executor_settings()
    worker_count()


def run_pipeline(dvc_arguments: list[str]) -> int:
    """Validate params and the environment, clear a killed run's temp files, `dvc repro` under one parent
    run, and end with the summary when the audit finished (including when the gate then refused the model)."""
    load_params()
    check_environment()
    sweep_stale_temps(OUTPUT_ROOTS)
    keep_or_restore_lock()
    clear_cut_short_rwlock()
    started = time.time()
    # After `remi purge --target`, train_target's output is gone on purpose: skip it, do not re-run it.
    missing_target = ["--allow-missing"] if TARGET_PURGE_RECORD.exists() else []
    try:
        code = run_under_parent_run([sys.executable, "-m", "dvc", "repro", *missing_target, *dvc_arguments],
                                    "dvc repro")
    except BaseException:  # stopped (SIGTERM, Ctrl-C): DVC may have been stopped while it rewrote dvc.lock
        keep_or_restore_lock()
        raise
    if code == 0:
        keep_or_restore_lock()
    gate = metrics_path("gate")
    # Only where there is an audit to sum up: `remi run <stage>` may succeed with none there yet. The summary only
    # reads what the stages wrote: a damaged file there (a merge's conflict markers) is said, not made the exit code.
    if metrics_path("audit").exists() and (code == 0 or (gate.exists() and gate.stat().st_mtime >= started)):
        try:
            print("\n" + summary_text(), flush=True)
        except (UserError, ValueError) as error:
            print(f"\nWARNING: no summary ({str(error)[:300]}); `remi summary` prints it once the file is whole.",
                  file=sys.stderr)
    return code
