"""Run `dvc repro` as one MLflow parent run; every stage logs a child run under it (`remi run`).
A dvc.lock cut short by a kill is replaced by the last complete one first (see _keep_or_restore_lock),
and DVC's lock table cut short by a kill is cleared (see _clear_cut_short_rwlock).

params.yaml is read and validated first, before DVC parses it (a hostile file, e.g. a YAML alias
bomb, would hang DVC's own parser) and before any stage deletes its outputs. Stage commands find
the project's interpreter through bin/python, whatever PATH holds.
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from remi.pipeline import tracking
from remi.pipeline.layout import OUTPUT_ROOTS, TARGET_PURGE_RECORD, metrics_path
from remi.pipeline.params import load_params
from remi.pipeline.summary import summary_text
from remi.runtime.device import compute_device, threads_override
from remi.runtime.executors import executor_name
from remi.runtime.files import sweep_stale_temps, write_bytes
from remi.runtime.locks import file_lock
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


LOCK_FILE = Path("dvc.lock")
LAST_COMPLETE_LOCK = Path(".dvc/tmp/remi-dvc.lock.complete")  # .dvc/tmp is DVC's own, git-ignored


PIPELINE_FILE = Path("dvc.yaml")
HASH = re.compile(r"[0-9a-f]{32}(\.dir)?")  # DVC's md5 of a file, or of a directory's listing


def _entry_is_complete(entry: object) -> bool:
    """A dependency or output as DVC writes it last: path, md5, size (and for a directory, its file count)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        return False
    md5 = entry.get("md5")
    return (isinstance(md5, str) and HASH.fullmatch(md5) is not None and isinstance(entry.get("size"), int)
            and (not md5.endswith(".dir") or isinstance(entry.get("nfiles"), int)))


def _declared_outputs(pipeline: dict, stage: str) -> int | None:
    """How many outputs dvc.yaml declares for a lock's stage (`name` or `name@item`); None if it does not say."""
    spec = pipeline.get("stages", {}).get(stage.split("@")[0])
    spec = spec.get("do", spec) if isinstance(spec, dict) else None
    if not isinstance(spec, dict):
        return None
    return sum(len(spec.get(kind) or []) for kind in ("outs", "metrics", "plots"))


def _lock_is_complete(text: str) -> bool:
    """Whether `text` is a dvc.lock that DVC finished writing. A kill cuts its in-place rewrite anywhere: in an
    entry (its md5 or size missing or short), or between entries (a stage with fewer outputs than dvc.yaml
    declares). A cut between two stages leaves a complete lock of fewer stages, which DVC reads as such and
    completes by re-running (or restoring from its run cache) the stages it lacks."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: the lock runs to thousands of lines
    try:
        lock, pipeline = yaml.load(text, Loader=loader), yaml.load(PIPELINE_FILE.read_text(), Loader=loader)
    except (yaml.YAMLError, OSError):
        return False
    stages = lock.get("stages") if isinstance(lock, dict) else None
    if not isinstance(stages, dict) or not isinstance(pipeline, dict):
        return False
    for name, stage in stages.items():
        if not isinstance(stage, dict) or not isinstance(stage.get("outs"), list):
            return False  # every stage of this pipeline writes outputs
        if not all(_entry_is_complete(entry) for entry in (*(stage.get("deps") or []), *stage["outs"])):
            return False
        declared = _declared_outputs(pipeline, name)
        if declared is not None and len(stage["outs"]) < declared:
            return False
    return True


def _keep_or_restore_lock() -> None:
    """DVC rewrites dvc.lock in place after each stage, so a kill during that write leaves it cut short
    and every later DVC command fails on it. Keep a copy of the last complete lock; put it back when
    the current one is cut short: DVC then re-runs (or restores from its run cache) what changed since.
    (A lock written before dvc.yaml declared more outputs reads as cut short too; its copy is the same
    file, and nothing changes.)"""
    if not LOCK_FILE.exists():
        return
    current = LOCK_FILE.read_bytes()
    if _lock_is_complete(current.decode(errors="replace")):
        write_bytes(LAST_COMPLETE_LOCK, current)
        return
    kept = LAST_COMPLETE_LOCK.read_bytes() if LAST_COMPLETE_LOCK.exists() else None
    if kept == current:
        return
    if kept is not None and _lock_is_complete(kept.decode(errors="replace")):
        print(f"{LOCK_FILE} was cut short (a kill while DVC wrote it); restoring the last complete one.",
              file=sys.stderr)
        write_bytes(LOCK_FILE, kept)
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


def check_environment() -> None:
    """The REMI_* variables the stages read, checked before DVC deletes any stage's outputs (a stage would
    only stop on them once its outputs were gone)."""
    threads_override()
    mode_override()
    compute_device()
    executor_name()


def run_pipeline(dvc_arguments: list[str]) -> int:
    """Validate params and the environment, clear a killed run's temp files, `dvc repro` under one parent
    run, and end with the summary when the audit finished (including when the gate then refused the model)."""
    load_params()
    check_environment()
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
