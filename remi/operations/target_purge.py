"""`remi purge --target`: delete the original target model, the one artifact that holds the influence
of every erased sample, once the pipeline no longer reads it.

That is the case once a release is the starting model (sequential unlearning, after a cycle that
started from a release): no stage lists models/target as a dependency any more (dvc.yaml reads the
starting model's directory from its manifest), the audit's "before unlearning" model is that release,
and the gate measures the test-accuracy drop from the target's recorded accuracy. Retraining needs
the data, not the target; what is lost is the audit's power measured on the original target.

Order, so that a kill anywhere leaves the target guarded: the record (models/target.purged.json,
git-tracked) and `frozen: true` on train_target in dvc.yaml come first, so nothing re-creates the target, then
the deletions, each of which a second run simply repeats: the workspace copy, the DVC objects only the
target uses (local cache and default remote; the record lists them and their directory listing goes last,
so a second run knows them even once the listing is gone), the MLflow logged models `target_model`
(artifacts deleted, the models tagged with what was purged and why). `remi run` then passes --allow-missing to
dvc repro, so the frozen stage whose output is gone is skipped instead of re-run.
"""

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from remi.errors import UserError
from remi.operations.dvc_commands import default_remote
from remi.pipeline import tracking
from remi.pipeline.layout import TARGET_DIR, TARGET_PURGE_RECORD
from remi.pipeline.params import load_params
from remi.pipeline.starting_model import BASE_MANIFEST, read_starting_model
from remi.runtime.files import atomic_write, read_json, write_json

PIPELINE_FILE = Path("dvc.yaml")
TARGET_STAGE = "train_target"
FROZEN_LINE = "    frozen: true  # `remi purge --target` deleted its output on purpose: never re-run it\n"
TARGET_LOGGED_MODEL = "target_model"  # the name stages/train_target.py logs the network under
REASON = ("the original target holds the influence of every erased sample; the pipeline starts from the "
          "released model instead and no stage reads the target any more")


class _ObjectStores:
    """The local DVC cache and, when one is configured, the default remote, by object id."""

    def __init__(self) -> None:
        from dvc.repo import Repo

        self.repo = Repo()
        self.local = self.repo.cache.local
        self.remote = self.repo.cloud.get_remote_odb(name=None, command="purge") if default_remote() else None

    def cached_outputs(self) -> dict[str, str]:
        """path -> object id of every cached output: the pipeline's (as dvc.lock records them, present
        or not) and every .dvc-tracked path."""
        return {os.path.relpath(out.fs_path, self.repo.root_dir): out.hash_info.value
                for out in self.repo.index.outs if out.use_cache and out.hash_info}

    def stores(self) -> list[tuple[str, Any]]:
        return [("local cache", self.local), *([("remote", self.remote)] if self.remote else [])]

    def objects(self, oid: str) -> set[str]:
        """`oid` and, for a directory, the ids of its files, read from whichever store has its listing."""
        if not oid.endswith(".dir"):
            return {oid}
        for _, store in self.stores():
            if store.exists(oid):
                with store.fs.open(store.oid_to_path(oid), "r") as listing:
                    return {oid} | {entry["md5"] for entry in json.load(listing)}
        raise UserError(f"Neither the DVC cache nor the remote holds the listing {oid}: run `dvc pull` first.")


def purge_target(apply: bool) -> None:
    start = read_starting_model()
    if start.is_target:
        raise UserError(f"The pipeline still starts from the original target ({BASE_MANIFEST}), so it cannot be "
                        "purged: set cycle.sequential: true, and purge after a cycle that started from a release.")
    stores = _ObjectStores()
    outputs = stores.cached_outputs()
    target_md5 = outputs.pop(TARGET_DIR.as_posix(), None)
    if target_md5 is None:
        raise UserError(f"dvc.lock records no {TARGET_DIR}; nothing to purge.")
    only_target = _objects_only_the_target_uses(stores, target_md5, outputs)
    verb = "Purging" if apply else "Would purge (dry run; `remi purge --target --apply` deletes)"
    print(f"{verb} the original target ({TARGET_DIR}, {target_md5}); the pipeline starts from {start.describe()}:")
    if apply:
        _guard(target_md5, only_target)
    print(f"  {TARGET_DIR}/ in the workspace" + ("" if TARGET_DIR.exists() else " (already gone)"))
    if apply:
        shutil.rmtree(TARGET_DIR, ignore_errors=True)
    for where, store in stores.stores():
        present = [oid for oid in only_target if store.exists(oid)]
        print(f"  DVC {where}: {len(present)} object(s) only the target uses")
        for oid in present if apply else ():
            store.delete(oid)
    _purge_logged_models(apply)


def _objects_only_the_target_uses(stores: _ObjectStores, target_md5: str, others: dict[str, str]) -> list[str]:
    """The DVC objects to delete, directory listings last: a run cut short still finds the listing, and a
    later run (the listing gone from every store) reads the list from the purge record instead."""
    if TARGET_PURGE_RECORD.exists() and "objects" in (record := read_json(TARGET_PURGE_RECORD)):
        return list(record["objects"])
    used_elsewhere = set().union(*(stores.objects(md5) for md5 in others.values()))
    return sorted(stores.objects(target_md5) - used_elsewhere, key=lambda oid: (oid.endswith(".dir"), oid))


def _guard(target_md5: str, objects: list[str]) -> None:
    """Before anything is deleted: the record (with the objects to delete), and train_target frozen, so no
    later run retrains it."""
    record = read_json(TARGET_PURGE_RECORD) if TARGET_PURGE_RECORD.exists() else {
        "purged_time": datetime.now(UTC).isoformat(timespec="seconds"), "model_md5": target_md5,
        "starting_model": read_starting_model().describe(), "reason": REASON}
    write_json(TARGET_PURGE_RECORD, record | {"objects": objects})
    _freeze_target_stage()
    print(f"  recorded in {TARGET_PURGE_RECORD}; stage {TARGET_STAGE} frozen in {PIPELINE_FILE} (commit both)")


def _freeze_target_stage() -> None:
    """`frozen: true` on train_target, so no change to its dependencies re-runs it. Written here, not
    by `dvc freeze`, which refuses to rewrite a dvc.yaml that uses variables; a line edit keeps the
    file's comments."""
    text = PIPELINE_FILE.read_text()
    header = f"  {TARGET_STAGE}:\n"
    if header not in text:
        raise UserError(f"{PIPELINE_FILE} has no stage {TARGET_STAGE}; nothing was deleted.")
    stage = text.split(header, 1)[1].split("\n\n", 1)[0]
    if "\n    frozen: true" not in "\n" + stage:
        atomic_write(PIPELINE_FILE, lambda path: path.write_text(text.replace(header, header + FROZEN_LINE, 1)))


def _purge_logged_models(apply: bool) -> None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    mlflow = tracking.configured_mlflow()
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(tracking.experiment_name())
    found = client.search_logged_models([experiment.experiment_id], f"name = '{TARGET_LOGGED_MODEL}'",
                                        max_results=1000) if experiment else []
    models = [m for m in found if "purged_time" not in m.tags]
    print(f"  MLflow: {len(models)} logged model(s) `{TARGET_LOGGED_MODEL}` (their artifacts)")
    if not apply:
        return
    tags = {"purged_time": datetime.now(UTC).isoformat(timespec="seconds"), "purged_reason": REASON}
    for model in models:
        get_artifact_repository(model.artifact_location).delete_artifacts()
        client.set_logged_model_tags(model.model_id, tags)
    # The registry says it too, beside the versions (which never held the target itself).
    for key, value in tags.items():
        client.set_registered_model_tag(load_params().gate.registered_model, f"original_target_{key}", value)
