"""`remi purge`: once a model honouring the erasure requests is released, delete what still carries
the erased samples' influence and nothing needs: the registry's superseded versions (their model
artifacts deleted, the versions kept with tags saying what was purged and why) and the DVC cache
(and, with a default remote, remote) objects no output of the current workspace uses. Dry run by
default: it lists what it would delete.

With --target, first the original target (remi/operations/target_purge.py), which is possible only
once a release is the starting model: before that every cycle starts from the target and the audit
measures against it. The raw data stays: retraining needs the data, not old models
(docs/operations.md).
"""

import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

from remi.errors import UserError
from remi.operations.cycle import CYCLE_LOCK, Outcome
from remi.operations.dvc_commands import default_remote, dvc
from remi.operations.target_purge import purge_target
from remi.pipeline import tracking
from remi.pipeline.params import load_params
from remi.pipeline.release import ALIAS
from remi.runtime.locks import LockTimeout, file_lock


def _superseded(client: Any, name: str) -> tuple[Any, list[Any]]:
    """The released version and the older ones not purged yet (a newer one may be a pending release)."""
    from mlflow.exceptions import MlflowException

    try:
        released = client.get_model_version_by_alias(name, ALIAS)
    except MlflowException as error:
        raise UserError(f"{name} has no @{ALIAS} version, so nothing is released and nothing superseded.") from error
    versions = client.search_model_versions(f"name='{name}'")
    older = (v for v in versions if int(v.version) < int(released.version) and "purged_time" not in v.tags)
    return released, sorted(older, key=lambda v: int(v.version))


def _purge_version(client: Any, name: str, version: Any, released: Any) -> None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    get_artifact_repository(client.get_model_version_download_uri(name, version.version)).delete_artifacts()
    reason = (f"superseded by version {released.version} (@{ALIAS}), which honours every erasure request "
              f"released so far; this version's model still carried the influence of later requests")
    for key, value in (("purged_time", datetime.now(UTC).isoformat(timespec="seconds")),
                       ("purged_reason", reason)):
        client.set_model_version_tag(name, version.version, key, value)


def _dvc_gc(apply: bool) -> int:
    gc = ["gc", "--workspace", *(["--cloud"] if default_remote() else [])]
    if apply:
        return dvc(*gc, "--force")
    dry = subprocess.run([sys.executable, "-m", "dvc", *gc, "--dry"], capture_output=True, text=True)
    # DVC words a dry run like the real one; say what it is.
    print(dry.stdout.replace("Removing ", "would remove ").replace("Removed ", "would remove "), end="")
    print(dry.stderr, end="", file=sys.stderr)
    return dry.returncode


def purge(apply: bool, target: bool = False) -> int:
    """Under the job lock, so no cycle produces objects while DVC collects garbage."""
    try:
        with file_lock(CYCLE_LOCK, 0, "remi purge"):
            if target:
                purge_target(apply)
            return _purge(apply)
    except LockTimeout:
        print(f"A re-unlearning cycle holds {CYCLE_LOCK}; purge after it has finished.", file=sys.stderr)
        return int(Outcome.BUSY)


def _purge(apply: bool) -> int:
    name = load_params().gate.registered_model
    client = tracking.configured_mlflow().MlflowClient()
    released, superseded = _superseded(client, name)
    verb = "Purging" if apply else "Would purge (dry run; `remi purge --apply` deletes)"
    print(f"{name}@{ALIAS} is version {released.version}. {verb}:")
    for version in superseded:
        print(f"  registry: version {version.version} (run {version.run_id}): its model artifacts")
        if apply:
            _purge_version(client, name, version, released)
    if not superseded:
        print("  registry: no superseded version left")
    print("  DVC: cache objects no current output uses" + (":" if apply else " (dvc gc --dry):"), flush=True)
    return _dvc_gc(apply)
