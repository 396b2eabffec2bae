"""`remi purge`: once a model honouring the erasure requests is released, delete what still carries
the erased samples' influence and nothing needs: the registry's superseded versions (their model
artifacts deleted, the versions kept with tags saying what was purged and why), the models that
`unlearn` runs logged before that release and that no version or workspace output stands for (the
other methods', a gate's refused ones: each came from a forget set later requests outgrew), and the
DVC cache (and, with a default remote, remote) objects no output of the current workspace uses. Dry
run by default: it lists what it would delete.

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
from remi.operations.cycle import CYCLE_LOCK, LOCK_HOLDERS, Outcome
from remi.operations.dvc_commands import default_remote, dvc
from remi.operations.target_purge import purge_target
from remi.params_schema import METHOD_SECTIONS
from remi.pipeline import tracking
from remi.pipeline.params import load_params
from remi.pipeline.release import ALIAS
from remi.runtime.locks import LockTimeout, file_lock

MAX_LOGGED_MODEL_PAGES = 100  # of 1,000 each: a bound on the listing, far above what a store holds


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


def _purge_tags(released: Any, what: str) -> dict[str, str]:
    return {"purged_time": datetime.now(UTC).isoformat(timespec="seconds"),
            "purged_reason": f"superseded by version {released.version} (@{ALIAS}), which honours every erasure "
                             f"request released so far; {what} still carried the influence of later requests"}


def _purge_version(client: Any, name: str, version: Any, released: Any) -> None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    get_artifact_repository(client.get_model_version_download_uri(name, version.version)).delete_artifacts()
    for key, value in _purge_tags(released, "this version's model").items():
        client.set_model_version_tag(name, version.version, key, value)


def _logged_models(client: Any, experiment_id: str) -> list[Any]:
    models, token = [], None
    for _ in range(MAX_LOGGED_MODEL_PAGES):
        page = client.search_logged_models([experiment_id], max_results=1000, page_token=token)
        models += list(page)
        token = page.token
        if not token:
            return models
    raise UserError(f"Experiment {experiment_id} holds over {MAX_LOGGED_MODEL_PAGES * 1000:,} logged models; "
                    "nothing was purged.")


def _superseded_logged_models(client: Any, released: Any, methods: list[str]) -> list[Any]:
    """Models that `unlearn` runs logged before `released` was registered, other than its own and those of the
    workspace's outputs (a gate may still register one), not purged yet."""
    experiment = tracking.configured_mlflow().get_experiment_by_name(tracking.experiment_name())
    if experiment is None:
        return []
    records = (tracking.read_run_record(f"unlearn/{method}") for method in methods)
    kept_runs = {released.run_id} | {record["run_id"] for record in records if record is not None}
    names = {f"{method}_model" for method in METHOD_SECTIONS}
    return [model for model in _logged_models(client, experiment.experiment_id)
            if model.name in names and model.source_run_id not in kept_runs and "purged_time" not in model.tags
            and model.creation_timestamp < released.creation_timestamp]


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
        print(f"{LOCK_HOLDERS} holds {CYCLE_LOCK}; purge after it has finished.", file=sys.stderr)
        return int(Outcome.BUSY)


def _purge(apply: bool) -> int:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    params = load_params()
    name = params.gate.registered_model
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
    logged = _superseded_logged_models(client, released, params.unlearn.methods)
    for model in logged:
        print(f"  MLflow: logged model {model.name} (run {model.source_run_id}): its artifacts")
        if apply:
            get_artifact_repository(model.artifact_location).delete_artifacts()
            client.set_logged_model_tags(model.model_id, _purge_tags(released, "this logged model"))
    if not logged:
        print("  MLflow: no superseded logged model left")
    print("  DVC: cache objects no current output uses" + (":" if apply else " (dvc gc --dry):"), flush=True)
    return _dvc_gc(apply)
