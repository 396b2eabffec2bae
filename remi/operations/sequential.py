"""Sequential unlearning for the re-unlearning job (params `cycle.sequential`): before the pipeline
runs, the model released last becomes the starting model (remi/pipeline/starting_model.py), so the
methods forget only the samples that release does not honour yet. (Compaction, the gate's choice of
the retrained model instead, is in remi/pipeline/compaction.py.)

The move happens at the start of the next cycle rather than right after the release, so the dvc.lock
a cycle commits always matches the workspace it leaves. Its order makes a kill anywhere harmless:
the weights are copied, tracked (`dvc add`) and pushed to the default remote before the manifest
names them, so a committed manifest never points at weights another machine cannot pull, and a cycle
killed before the manifest was written simply moves it again.
"""

import shutil
from pathlib import Path
from typing import Any

from remi.catalog import REFERENCE
from remi.data.splits import load_split
from remi.errors import UserError
from remi.networks import MODEL_FILE
from remi.operations.dvc_commands import default_remote, dvc
from remi.operations.ledger import read_events
from remi.params_schema import Params
from remi.pipeline.layout import TARGET_PURGE_RECORD, metrics_path, split_path, unlearned_dir
from remi.pipeline.starting_model import (
    BASE_WEIGHTS_DIR,
    FROM_TARGET,
    StartingModel,
    read_starting_model,
    write_starting_model,
)
from remi.runtime.files import file_md5, read_json, replace_dir

RELEASE_FACTS = ("method", "model_md5", "forget_md5")  # what a `released` event must say to be started from


class InfrastructureError(RuntimeError):
    """A tool the job relies on (DVC) failed; nothing was recorded."""


def last_release(ledger: Path) -> dict[str, Any] | None:
    released = [e["detail"] for e in read_events(ledger) if e["event"] == "released"]
    return released[-1] if released else None


def prepare_starting_model(params: Params, ledger: Path) -> StartingModel:
    """This cycle's starting model: the last release when sequential, else the original target."""
    start = read_starting_model()
    if not params.cycle.sequential:
        if TARGET_PURGE_RECORD.exists():
            raise UserError(f"cycle.sequential is off, but the original target was purged ({TARGET_PURGE_RECORD}): "
                            "the methods can only start from the last release. Set cycle.sequential: true.")
        if not start.is_target:  # switched off: back to unlearning everything from the target
            write_starting_model(FROM_TARGET)
        return FROM_TARGET
    release = last_release(ledger)
    if release is None or (not start.is_target and release.get("model_md5") == start.model_md5):
        return start
    return _start_from(release, start)


def _start_from(release: dict[str, Any], previous: StartingModel) -> StartingModel:
    """The released model, copied from the pipeline outputs that produced it, as the starting model."""
    if not set(RELEASE_FACTS) <= release.keys():
        raise UserError(f"The last `released` event (version {release['model_version']}) predates sequential "
                        "unlearning and does not say which model file it released: run one cycle with "
                        "cycle.sequential: false, then switch it on.")
    method = release["method"]
    model_file, forget_file = unlearned_dir(method) / MODEL_FILE, split_path("forget")
    missing = [str(path) for path in (model_file, forget_file) if not path.is_file()]
    if missing:
        raise UserError(f"{' and '.join(missing)}, which released version {release['model_version']} came from and the "
                        "next cycle starts from, are not in the workspace: `dvc pull` them (the cycle's "
                        "`dvc pull --allow-missing` found them in no remote: push them from the machine that ran "
                        "that cycle, `dvc push --run-cache`).")
    if file_md5(model_file) != release["model_md5"] or file_md5(forget_file) != release["forget_md5"]:
        raise UserError(f"{model_file} and {forget_file} are not those of the released version "
                        f"{release['model_version']}, which the next cycle must start from: check out the "
                        "commit that released it (`git checkout <commit> -- dvc.lock && dvc checkout`).")

    def copy_model(directory: Path) -> None:
        shutil.copy2(model_file, directory / MODEL_FILE)

    replace_dir(BASE_WEIGHTS_DIR, copy_model)
    weights = f"{BASE_WEIGHTS_DIR}.dvc"
    if dvc("add", str(BASE_WEIGHTS_DIR)) != 0 or (default_remote() and dvc("push", weights) != 0):
        raise InfrastructureError(f"tracking or pushing {BASE_WEIGHTS_DIR} failed")
    start = StartingModel(
        registered_version=release["model_version"], method=method, model_md5=release["model_md5"],
        honoured_ids=tuple(load_split(forget_file).tolist()),
        releases_since_retrain=0 if method == REFERENCE else previous.releases_since_retrain + 1,
        # Measured when the target was trained (the audit's figure for it too), kept after a purge.
        original_test_accuracy=read_json(metrics_path("train_target"))["test_accuracy"])
    write_starting_model(start)
    print(f"Sequential unlearning: this cycle starts from {start.describe()}.", flush=True)
    return start
