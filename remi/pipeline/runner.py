"""Run `dvc repro` as one MLflow parent run; every stage logs a child run under it (`remi run`).
A dvc.lock cut short by a kill is replaced by the last complete one first (see _keep_or_restore_lock),
and DVC's lock table cut short by a kill is cleared (see _clear_cut_short_rwlock).

params.yaml is read and validated first, before DVC parses it (a hostile file, e.g. a YAML alias
bomb, would hang DVC's own parser) and before any stage deletes its outputs. Stage commands find
the project's interpreter through bin/python, whatever PATH holds.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from remi.pipeline import tracking
from remi.pipeline.layout import OUTPUT_ROOTS, TARGET_PURGE_RECORD, metrics_path
from remi.pipeline.params import load_params
from remi.pipeline.summary import summary_text
from remi.runtime.files import sweep_stale_temps
from remi.runtime.locks import file_lock
from remi.runtime.process_identity import process_tags


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
        code = subprocess.call(command, env=env)
        seconds = time.perf_counter() - started
        mlflow.log_metric("pipeline_seconds", seconds)
        # Tagged after the run: dvc.lock now holds the hashes of what this run produced.
        mlflow.set_tags({f"final.{k}": v for k, v in tracking.code_identity().items()})
        print(f"{run_name} finished in {seconds:.1f} s with exit code {code}; MLflow run {run.info.run_id}")
        if code:
            mlflow.end_run(status="FAILED")
    return code


LOCK_FILE = Path("dvc.lock")
LAST_COMPLETE_LOCK = Path(".dvc/tmp/remi-dvc.lock.complete")  # .dvc/tmp is DVC's own, git-ignored


def _lock_is_complete() -> bool:
    try:
        lock = yaml.safe_load(LOCK_FILE.read_text())
    except yaml.YAMLError:
        return False
    stages = lock.get("stages") if isinstance(lock, dict) else None
    return isinstance(stages, dict) and all(
        isinstance(entry, dict) and isinstance(entry.get("path"), str) and isinstance(entry.get("md5"), str)
        for stage in stages.values() if isinstance(stage, dict)
        for entry in (*stage.get("deps", []), *stage.get("outs", [])))


def _keep_or_restore_lock() -> None:
    """DVC rewrites dvc.lock in place after each stage, so a kill during that write leaves it cut short
    and every later DVC command fails on it. Keep a copy of the last complete lock; put it back when
    the current one is cut short: DVC then re-runs (or restores from its run cache) what changed since."""
    if not LOCK_FILE.exists():
        return
    if _lock_is_complete():
        LAST_COMPLETE_LOCK.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(LOCK_FILE, LAST_COMPLETE_LOCK)
    elif LAST_COMPLETE_LOCK.exists():
        print(f"{LOCK_FILE} was cut short (a kill while DVC wrote it); restoring the last complete one.",
              file=sys.stderr)
        shutil.copyfile(LAST_COMPLETE_LOCK, LOCK_FILE)
    else:
        print(f"{LOCK_FILE} is cut short or malformed; restore it with `git checkout {LOCK_FILE}`.", file=sys.stderr)


RWLOCK = Path(".dvc/tmp/rwlock")  # which running DVC processes read or write which paths
RWLOCK_GUARD = Path(".dvc/tmp/rwlock.lock")  # the flock DVC holds while it edits RWLOCK


def _rwlock_parses() -> bool:
    try:
        json.loads(RWLOCK.read_text())
    except FileNotFoundError:
        return True
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return True


def _clear_cut_short_rwlock() -> None:
    """DVC rewrites its lock table in place too (truncate, then write), so a kill between the two leaves
    it empty and every later DVC command stops with "RWLock-file ... is corrupted". Its entries name
    live processes only (DVC drops those whose pid is gone), and a missing table means no locks. A table
    that still does not parse once DVC's own guard is ours was left by a dead writer: remove it."""
    if _rwlock_parses():
        return
    with file_lock(RWLOCK_GUARD, timeout_seconds=30, what="DVC's lock table"):
        if not _rwlock_parses():
            print(f"{RWLOCK} was cut short (a kill while DVC wrote it); clearing it.", file=sys.stderr)
            RWLOCK.unlink()


def run_pipeline(dvc_arguments: list[str]) -> int:
    """Validate params, clear a killed run's temp files, `dvc repro` under one parent run, and end
    with the summary when the audit finished (including when the gate then refused the model)."""
    load_params()
    sweep_stale_temps(OUTPUT_ROOTS)
    _keep_or_restore_lock()
    _clear_cut_short_rwlock()
    started = time.time()
    # After `remi purge --target`, train_target's output is gone on purpose: skip it, do not re-run it.
    missing_target = ["--allow-missing"] if TARGET_PURGE_RECORD.exists() else []
    code = run_under_parent_run([sys.executable, "-m", "dvc", "repro", *missing_target, *dvc_arguments],
                                "dvc repro")
    if code == 0:
        _keep_or_restore_lock()
    gate = metrics_path("gate")
    if code == 0 or (gate.exists() and gate.stat().st_mtime >= started):
        print("\n" + summary_text(), flush=True)
    return code
