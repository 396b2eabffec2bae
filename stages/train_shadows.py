"""Stages train_shadows and train_online_shadows: one set of K shadow models (its params section is the
argument: shadows | online_shadows), each saved with its outputs on its in and out samples.

The output directory persists between runs (see dvc.yaml): a shadow whose fingerprint still
matches is kept, so raising <section>.count trains only the new ones (and the last block of
<section>.train_together, if it was incomplete: a block trains as one vectorised computation).
"""

import hashlib
import shutil
import sys
import time
from contextlib import closing
from pathlib import Path

import torch

from remi.attacks.shadow_models import shadow_blocks, shadow_fingerprint, train_shadows
from remi.data.datasets import load_dataset
from remi.data.splits import load_split
from remi.errors import UserError
from remi.networks.checkpoints import ArtifactError, load_model, load_shadow_outputs, save_model, torch_bytes
from remi.networks.training import accuracy
from remi.pipeline import tracking
from remi.pipeline.entry_point import stage_main
from remi.pipeline.layout import SHADOW_SETS, ShadowSet, metrics_path, run_record_path, shadow_dir, split_path
from remi.pipeline.params import load_params
from remi.runtime.executors import executor_for, map_in_order
from remi.runtime.files import file_md5, read_json, replace_dir, write_bytes, write_json
from remi.runtime.progress import Progress

FINGERPRINT = "fingerprint.json"


def main() -> None:
    shadow_set = _chosen_set(sys.argv[1:])
    params = load_params()
    section = getattr(params, shadow_set.section)
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    split_files = [split_path(name) for name in shadow_set.pool_splits]
    pool = torch.cat([load_split(path) for path in split_files])
    pool_md5 = hashlib.md5("".join(file_md5(path) for path in split_files).encode()).hexdigest()
    count = section.count
    sections = params.model_dump(include={"model", "train", shadow_set.section})
    with tracking.stage_run(shadow_set.stage, shadow_set.section, sections, ["prepare"]) as stage:
        for path, name in zip(split_files, shadow_set.pool_splits, strict=True):
            tracking.log_data_input(path, context=name)
        trained, started, progress = 0, time.perf_counter(), Progress(shadow_set.section, count)
        epochs = params.train.epochs
        fingerprints = {i: shadow_fingerprint(i, section, params, pool_md5, dataset.digest) for i in range(count)}
        # A block trains whole: its shadows' bits depend on the block (see shadow_blocks).
        to_train = []
        for block in shadow_blocks(count, section.train_together):
            if all(_is_saved(shadow_dir(i, shadow_set.directory), fingerprints[i]) for i in block):
                for _ in block:
                    progress.advance("reused")
            else:
                to_train.append(block)
        executor = executor_for(len(to_train), dataset, pool)
        tracking.set_tags({"executor": executor})
        on_epoch = (lambda epoch, _: progress.detail(f"epoch {epoch + 1}/{epochs}")) if executor == "local" else None
        with closing(map_in_order(train_shadows, to_train, executor, shadows=section, dataset=dataset, pool=pool,
                                  params=params, on_epoch=on_epoch)) as blocks_trained:
            for block, results in zip(to_train, blocks_trained, strict=True):
                for shadow_id, (model, outputs) in zip(block, results, strict=True):
                    _save(shadow_set, params, dataset, shadow_id, model, outputs, fingerprints[shadow_id],
                          stage.info.run_id)
                    trained += 1
                    progress.advance(f"trained ({executor})")
        for stale in sorted(shadow_set.directory.glob("shadow_*"), key=_shadow_number)[count:]:
            shutil.rmtree(stale)
        metrics = _summary(shadow_set, count) | {"shadows_trained": trained, "shadows_reused": count - trained,
                                                 "train_seconds": time.perf_counter() - started}
        write_json(metrics_path(shadow_set.stage), metrics)
        tracking.write_run_record(run_record_path(shadow_set.section), stage)
        tracking.log_metrics(metrics)


def _chosen_set(arguments: list[str]) -> ShadowSet:
    if len(arguments) != 1 or arguments[0] not in SHADOW_SETS:
        raise UserError(f"usage: python -m stages.train_shadows {{{' | '.join(SHADOW_SETS)}}} (got {arguments})")
    return SHADOW_SETS[arguments[0]]


def _shadow_number(directory: Path) -> int:
    """shadow_1000 comes after shadow_999 (by name it would sort before shadow_101)."""
    suffix = directory.name.removeprefix("shadow_")
    return int(suffix) if suffix.isdecimal() else -1


def _is_saved(directory: Path, fingerprint: str) -> bool:
    """Whether `directory` holds the shadow `fingerprint` describes, with files that load; an unreadable record
    (edited by hand), or a model or outputs file missing or damaged (bit rot; a stale shadow's removal cut short,
    which leaves the record without the rest), means it does not, and the shadow trains again: reused, it would
    fail every later stage, whatever `dvc repro --force` was asked."""
    try:
        if read_json(directory / FINGERPRINT)["fingerprint"] != fingerprint:
            return False
    except (OSError, ValueError, TypeError, KeyError):
        return False
    try:
        load_model(directory)
        load_shadow_outputs(directory)
    except ArtifactError:
        return False
    return True


def _save(shadow_set, params, dataset, shadow_id, model, outputs, fingerprint, stage_run_id) -> None:
    role = f"{shadow_set.section.removesuffix('s')}_{shadow_id:03d}"  # shadow_003, online_shadow_003
    sections = {"shadow_id": shadow_id, **params.model_dump(include={"model", "train", shadow_set.section})}
    with tracking.stage_run(shadow_set.stage, role, sections, parent_run_id=stage_run_id):
        tracking.set_tags({"shadow.fingerprint": fingerprint})  # ties the run to the files it made

        def fill(directory):
            save_model(directory, model, params.model, dataset)
            write_bytes(directory / "outputs.pt", torch_bytes(outputs))
            # Written last: a shadow counts as complete only once its fingerprint exists.
            write_json(directory / FINGERPRINT, {"fingerprint": fingerprint})

        replace_dir(shadow_dir(shadow_id, shadow_set.directory), fill)
        tracking.log_metrics(_accuracies(outputs))


def _accuracies(outputs: dict[str, torch.Tensor]) -> dict[str, float]:
    member = outputs["is_member"]
    return {"in_accuracy": accuracy(outputs["logits"][member], outputs["labels"][member]),
            "out_accuracy": accuracy(outputs["logits"][~member], outputs["labels"][~member])}


def _summary(shadow_set: ShadowSet, count: int) -> dict[str, float]:
    per_shadow = [_accuracies(load_shadow_outputs(shadow_dir(i, shadow_set.directory))) for i in range(count)]
    return {f"mean_{key}": sum(s[key] for s in per_shadow) / count for key in per_shadow[0]} | {
        "shadow_count": count}


if __name__ == "__main__":
    stage_main(main)
