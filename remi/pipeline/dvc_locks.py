"""DVC's own files that a kill can cut short, and how `remi run` mends them: dvc.lock (kept aside while
complete, put back when cut short) and its lock table .dvc/tmp/rwlock (cleared when cut short).

`python -m remi.pipeline.dvc_locks` exits 0 if dvc.lock is complete (scripts/cycle_pr.sh asks before it
commits one).
"""

import json
import re
import sys
from pathlib import Path

import yaml

from remi.runtime.files import write_bytes
from remi.runtime.locks import file_lock

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


def lock_is_complete(text: str) -> bool:
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


def keep_or_restore_lock() -> None:
    """DVC rewrites dvc.lock in place after each stage, so a kill during that write leaves it cut short
    and every later DVC command fails on it. Keep a copy of the last complete lock; put it back when
    the current one is cut short: DVC then re-runs (or restores from its run cache) what changed since.
    (A lock written before dvc.yaml declared more outputs reads as cut short too; its copy is the same
    file, and nothing changes.)"""
    if not LOCK_FILE.exists():
        return
    current = LOCK_FILE.read_bytes()
    if lock_is_complete(current.decode(errors="replace")):
        write_bytes(LAST_COMPLETE_LOCK, current)
        return
    kept = LAST_COMPLETE_LOCK.read_bytes() if LAST_COMPLETE_LOCK.exists() else None
    if kept == current:
        return
    if kept is not None and lock_is_complete(kept.decode(errors="replace")):
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


def clear_cut_short_rwlock() -> None:
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


if __name__ == "__main__":
    complete = LOCK_FILE.exists() and lock_is_complete(LOCK_FILE.read_bytes().decode(errors="replace"))
    print(f"{LOCK_FILE} is {'complete' if complete else 'missing, cut short or malformed'}.")
    sys.exit(0 if complete else 1)
