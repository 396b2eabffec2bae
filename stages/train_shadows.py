"""Stage train_shadows: K shadow models, each saved with its outputs on its in and out samples.

The output directory persists between runs (see dvc.yaml): a shadow whose fingerprint still
matches is kept, so raising shadows.count trains only the new ones (and the last block of
shadows.train_together, if it was incomplete: a block trains as one vectorised computation).
"""

import shutil
import time
from contextlib import closing

import torch

from remi.attacks.shadow_models import shadow_blocks, shadow_fingerprint, train_shadows
from remi.data.datasets import load_dataset
from remi.data.splits import load_split
from remi.networks.checkpoints import load_shadow_outputs, save_model, torch_bytes
from remi.networks.training import accuracy
from remi.pipeline import tracking
from remi.pipeline.entry_point import stage_main
from remi.pipeline.layout import SHADOWS_DIR, metrics_path, run_record_path, shadow_dir, split_path
from remi.pipeline.params import load_params
from remi.runtime.executors import executor_name, map_in_order, runs_in_process
from remi.runtime.files import file_md5, read_json, replace_dir, write_bytes, write_json
from remi.runtime.progress import Progress

FINGERPRINT = "fingerprint.json"


def main() -> None:
    params = load_params()
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    pool = load_split(split_path("shadow_pool"))
    pool_md5 = file_md5(split_path("shadow_pool"))
    count = params.shadows.count
    sections = params.model_dump(include={"model", "train", "shadows"})
    with tracking.stage_run("train_shadows", "shadows", sections, ["prepare"]) as stage:
        tracking.log_data_input(split_path("shadow_pool"), context="shadow_pool")
        trained, started, progress = 0, time.perf_counter(), Progress("shadows", count)
        epochs = params.train.epochs
        fingerprints = {i: shadow_fingerprint(i, params, pool_md5, dataset.digest) for i in range(count)}
        # A block trains whole: its shadows' bits depend on the block (see shadow_blocks).
        to_train = []
        for block in shadow_blocks(count, params.shadows.train_together):
            if all(_is_saved(i, fingerprints[i]) for i in block):
                for _ in block:
                    progress.advance("reused")
            else:
                to_train.append(block)
        executor = executor_name()
        tracking.set_tags({"executor": executor})
        on_epoch = (lambda epoch, _: progress.detail(f"epoch {epoch + 1}/{epochs}")) if runs_in_process() else None
        with closing(map_in_order(train_shadows, to_train, dataset=dataset, pool=pool, params=params,
                                  on_epoch=on_epoch)) as blocks_trained:
            for block, results in zip(to_train, blocks_trained, strict=True):
                for shadow_id, (model, outputs) in zip(block, results, strict=True):
                    _save(dataset, shadow_id, model, outputs, params, fingerprints[shadow_id], stage.info.run_id)
                    trained += 1
                    progress.advance(f"trained ({executor})")
        for stale in sorted(SHADOWS_DIR.glob("shadow_*"))[count:]:
            shutil.rmtree(stale)
        metrics = _summary(count) | {"shadows_trained": trained, "shadows_reused": count - trained,
                                     "train_seconds": time.perf_counter() - started}
        write_json(metrics_path("train_shadows"), metrics)
        tracking.write_run_record(run_record_path("shadows"), stage)
        tracking.log_metrics(metrics)


def _is_saved(shadow_id: int, fingerprint: str) -> bool:
    record = shadow_dir(shadow_id) / FINGERPRINT
    return record.exists() and read_json(record)["fingerprint"] == fingerprint


def _save(dataset, shadow_id, model, outputs, params, fingerprint, stage_run_id) -> None:
    role = f"shadow_{shadow_id:03d}"
    sections = {"shadow_id": shadow_id, **params.model_dump(include={"model", "train", "shadows"})}
    with tracking.stage_run("train_shadows", role, sections, parent_run_id=stage_run_id):
        tracking.set_tags({"shadow.fingerprint": fingerprint})  # ties the run to the files it made

        def fill(directory):
            save_model(directory, model, params.model, dataset)
            write_bytes(directory / "outputs.pt", torch_bytes(outputs))
            # Written last: a shadow counts as complete only once its fingerprint exists.
            write_json(directory / FINGERPRINT, {"fingerprint": fingerprint})

        replace_dir(shadow_dir(shadow_id), fill)
        tracking.log_metrics(_accuracies(outputs))


def _accuracies(outputs: dict[str, torch.Tensor]) -> dict[str, float]:
    member = outputs["is_member"]
    return {"in_accuracy": accuracy(outputs["logits"][member], outputs["labels"][member]),
            "out_accuracy": accuracy(outputs["logits"][~member], outputs["labels"][~member])}


def _summary(count: int) -> dict[str, float]:
    per_shadow = [_accuracies(load_shadow_outputs(shadow_dir(i)))
                  for i in range(count)]
    return {f"mean_{key}": sum(s[key] for s in per_shadow) / count for key in per_shadow[0]} | {
        "shadow_count": count}


if __name__ == "__main__":
    stage_main(main)
