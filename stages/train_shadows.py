"""Stage train_shadows: K shadow models, each saved with its outputs on its in and out samples.

The output directory persists between runs (see dvc.yaml): a shadow whose fingerprint still
matches is kept, so raising shadows.count trains only the new ones.
"""

import shutil
import time

import torch

from remi.attacks.shadow_models import shadow_fingerprint, train_shadow
from remi.data.datasets import load_dataset
from remi.data.splits import load_split
from remi.networks.checkpoints import load_shadow_outputs, save_model, torch_bytes
from remi.networks.training import accuracy
from remi.pipeline import tracking
from remi.pipeline.entry_point import stage_main
from remi.pipeline.layout import SHADOWS_DIR, metrics_path, run_record_path, shadow_dir, split_path
from remi.pipeline.params import load_params
from remi.runtime.device import compute_device
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
        for shadow_id in range(count):
            fingerprint = shadow_fingerprint(shadow_id, params, pool_md5, dataset.digest)
            record = shadow_dir(shadow_id) / FINGERPRINT
            if record.exists() and read_json(record)["fingerprint"] == fingerprint:
                progress.advance("reused")
                continue
            _train_and_save(dataset, pool, shadow_id, params, fingerprint, stage.info.run_id, progress)
            trained += 1
            progress.advance("trained")
        for stale in sorted(SHADOWS_DIR.glob("shadow_*"))[count:]:
            shutil.rmtree(stale)
        metrics = _summary(count) | {"shadows_trained": trained, "shadows_reused": count - trained,
                                     "train_seconds": time.perf_counter() - started}
        write_json(metrics_path("train_shadows"), metrics)
        tracking.write_run_record(run_record_path("shadows"), stage)
        tracking.log_metrics(metrics)


def _train_and_save(dataset, pool, shadow_id, params, fingerprint, stage_run_id, progress: Progress) -> None:
    role = f"shadow_{shadow_id:03d}"
    sections = {"shadow_id": shadow_id, **params.model_dump(include={"model", "train", "shadows"})}
    with tracking.stage_run("train_shadows", role, sections, parent_run_id=stage_run_id):
        tracking.set_tags({"shadow.fingerprint": fingerprint})  # ties the run to the files it made
        epochs = params.train.epochs
        model, outputs = train_shadow(dataset, pool, shadow_id, params, compute_device(),
                                      on_epoch=lambda epoch, _: progress.detail(f"epoch {epoch + 1}/{epochs}"))

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
