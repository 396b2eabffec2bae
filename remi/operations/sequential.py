"""Sequential unlearning and compaction, for the re-unlearning job (params section `cycle`).

With `cycle.sequential`, a cycle with pending requests first makes the model released last the
starting model (models/base, see remi/pipeline/starting_model.py), so the methods forget only the
samples that release does not honour yet. The move happens at the start of the next cycle rather than
right after the release, so the dvc.lock a cycle commits always matches the workspace it leaves.

A chain of approximate steps can drift away from retraining. Compaction bounds the drift: every
`compact_every`-th release, and whenever the incremental model fails the gate (with
`compact_on_gate_failure`), the cycle releases the model retrained from scratch on the current retain
set instead. Every cycle retrains anyway (it is the audit's reference), so compaction trains nothing
extra; the chain then continues from the retrained model.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remi.audit.acceptance import gate_checks, per_model_from_flat
from remi.catalog import REFERENCE
from remi.data.splits import load_split
from remi.errors import UserError
from remi.networks import MODEL_FILE
from remi.operations.dvc_commands import dvc
from remi.operations.ledger import read_events
from remi.params_schema import Params
from remi.pipeline.layout import metrics_path, split_path, unlearned_dir
from remi.pipeline.release import release_method
from remi.pipeline.starting_model import (
    BASE_WEIGHTS_DIR,
    TARGET,
    StartingModel,
    read_starting_model,
    write_starting_model,
)
from remi.runtime.files import file_md5, read_json, replace_dir


class InfrastructureError(RuntimeError):
    """A tool the job relies on (DVC) failed; nothing was recorded."""


@dataclass(frozen=True)
class Release:
    version: int
    method: str
    compaction: str | None = None  # why the retrained model was released instead, if it was


def last_release(ledger: Path) -> dict[str, Any] | None:
    released = [e["detail"] for e in read_events(ledger) if e["event"] == "released"]
    return released[-1] if released else None


def prepare_starting_model(params: Params, ledger: Path) -> StartingModel:
    """The starting model of this cycle: the last release when sequential, else the target. Its
    weights are tracked by DVC (`dvc add`), so the cycle's push shares them with the next machine."""
    start = read_starting_model()
    if not params.cycle.sequential:
        if not start.is_target:  # switched off: back to unlearning everything from the target
            write_starting_model(TARGET)
        return TARGET
    release = last_release(ledger)
    if release is not None and release["model_version"] != start.registered_version:
        start = _start_from(release, start)
    if not start.is_target and dvc("add", str(BASE_WEIGHTS_DIR)) != 0:
        raise InfrastructureError(f"`dvc add {BASE_WEIGHTS_DIR}` failed")
    return start


def _start_from(release: dict[str, Any], previous: StartingModel) -> StartingModel:
    """The released model, copied from the pipeline outputs that produced it, as the starting model."""
    if not {"method", "model_md5", "forget_md5"} <= release.keys():
        raise UserError(f"The last `released` event (version {release['model_version']}) predates sequential "
                        "unlearning and does not say which model file it released: run one cycle with "
                        "cycle.sequential: false, then switch it on.")
    method = release["method"]
    model_file, forget_file = unlearned_dir(method) / MODEL_FILE, split_path("forget")
    if file_md5(model_file) != release["model_md5"] or file_md5(forget_file) != release["forget_md5"]:
        raise UserError(f"{model_file} and {forget_file} are not those of the released version "
                        f"{release['model_version']}, which the next cycle must start from: check out the "
                        "commit that released it (`git checkout <commit> -- dvc.lock && dvc checkout`).")

    def copy_model(directory: Path) -> None:
        shutil.copy2(model_file, directory / MODEL_FILE)

    replace_dir(BASE_WEIGHTS_DIR, copy_model)
    start = StartingModel(
        registered_version=release["model_version"], method=method, model_md5=release["model_md5"],
        honoured_ids=tuple(load_split(forget_file).tolist()),
        releases_since_retrain=0 if method == REFERENCE else previous.releases_since_retrain + 1)
    write_starting_model(start)
    print(f"Sequential unlearning: this cycle starts from {start.describe()}.", flush=True)
    return start


def compaction_reason(params: Params, start: StartingModel, gate_passed: bool) -> str | None:
    policy = params.cycle
    if not policy.sequential:
        return None
    if policy.compact_every and start.releases_since_retrain + 1 >= policy.compact_every:
        return (f"every {policy.compact_every} releases (cycle.compact_every): "
                f"{start.releases_since_retrain} incremental release(s) since a model trained from scratch")
    if not gate_passed and policy.compact_on_gate_failure:
        return "the incremental model failed the gate (cycle.compact_on_gate_failure)"
    return None


def decide_release(params: Params, start: StartingModel, gate: dict[str, float]) -> Release | None:
    """What this cycle releases: the retrained model when compaction is due (and it meets the gated
    limits), else the gate's model if it passed, else nothing."""
    passed = bool(gate.get("passed"))
    reason = compaction_reason(params, start, passed)
    if reason:
        audit = per_model_from_flat(read_json(metrics_path("audit")))
        if all(check["passed"] for check in gate_checks(audit, params.acceptance, REFERENCE)):
            version = release_method(REFERENCE, params.gate.registered_model, {"compaction": reason})
            print(f"Compaction ({reason}): released the model retrained from scratch, "
                  f"{params.gate.registered_model} version {version}.", flush=True)
            return Release(version, REFERENCE, reason)
        print("Compaction was due, but the retrained model misses the gated limits.", flush=True)
    if passed:
        return Release(int(gate["registered_version"]), params.gate.method)
    return None
