"""Stage train_target: the model whose training samples will later be forgotten."""

import time

from remi.data.datasets import load_dataset
from remi.data.splits import load_split
from remi.errors import UserError
from remi.networks.architectures import build_network
from remi.networks.checkpoints import save_model
from remi.networks.training import seeded_network, split_accuracies, train_classifier
from remi.pipeline import tracking
from remi.pipeline.entry_point import stage_main
from remi.pipeline.layout import TARGET_DIR, TARGET_PURGE_RECORD, metrics_path, run_record_path, split_path
from remi.pipeline.params import load_params
from remi.runtime.device import compute_device, synchronize
from remi.runtime.files import replace_dir, write_json
from remi.runtime.progress import Progress


def main() -> None:
    if TARGET_PURGE_RECORD.exists():
        raise UserError(
            f"The original target was purged (`remi purge --target`, {TARGET_PURGE_RECORD}); training it again "
            "would re-create the influence of every erased sample. `remi run` skips this frozen stage; a plain "
            "`dvc repro` needs --allow-missing. To start over from a new target on purpose, delete "
            f"{TARGET_PURGE_RECORD} and train_target's `frozen: true` line in dvc.yaml, and commit both.")
    params = load_params()
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    ids = {name: load_split(split_path(name)) for name in ("target_train", "audit_holdout", "test")}
    sections = params.model_dump(include={"model", "train"})
    with tracking.stage_run("train_target", "target", sections, ["prepare"]) as run:
        for name in ids:
            tracking.log_data_input(split_path(name), context=name)
        seed, device = params.train.seed, compute_device()
        model = seeded_network(lambda: build_network(params.model, dataset.input_shape, dataset.num_classes), seed)
        model.to(device)
        started, progress = time.perf_counter(), Progress("target epochs", params.train.epochs, log_each_item=False)

        def on_epoch(epoch: int, values: dict[str, float]) -> None:
            tracking.log_metrics(values, step=epoch)
            progress.advance(f"loss {values['train_loss']:.3f}")

        train_classifier(model, *dataset.subset(ids["target_train"]), params.train, seed, on_epoch=on_epoch)
        synchronize(device)
        seconds = time.perf_counter() - started
        accuracies = split_accuracies(model, dataset.inputs, dataset.labels, ids)
        metrics = {
            "train_accuracy": accuracies["target_train_accuracy"],
            "holdout_accuracy": accuracies["audit_holdout_accuracy"],
            "test_accuracy": accuracies["test_accuracy"],
            "generalisation_gap": accuracies["target_train_accuracy"] - accuracies["test_accuracy"],
            "train_seconds": seconds,
        }

        replace_dir(TARGET_DIR, lambda directory: save_model(directory, model, params.model, dataset))
        tracking.write_run_record(run_record_path("target"), run)
        write_json(metrics_path("train_target"), metrics)
        tracking.log_metrics(metrics)
        tracking.log_torch_model(model.cpu(), "target_model", dataset.inputs[:2].numpy())


if __name__ == "__main__":
    stage_main(main)
