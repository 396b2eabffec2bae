"""Stage unlearn@<method>: one unlearning method, timed, in its own model directory.

    python -m stages.unlearn --method remi
"""

import argparse
import os

import torch

from remi.data.datasets import load_dataset
from remi.networks.checkpoints import save_model
from remi.pipeline import tracking
from remi.pipeline.entry_point import stage_main
from remi.pipeline.layout import run_record_path, split_path, unlearn_metrics_path, unlearned_dir
from remi.pipeline.params import load_params
from remi.pipeline.starting_model import starting_model_for
from remi.pipeline.tasks import load_task
from remi.runtime.device import compute_device, describe
from remi.runtime.files import replace_dir, write_json
from remi.runtime.progress import Progress
from remi.unlearning import run_method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", required=True)
    method = parser.parse_args().method
    params = load_params()
    if method not in params.unlearn.methods:
        parser.error(f"--method {method!r} is not listed in params.yaml unlearn.methods")
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    device = compute_device()
    sections = {"method": method, "train": params.train, "model": params.model, method: params.method(method)}
    with tracking.stage_run("unlearn", method, sections, ["prepare", "target", "attack"]) as run:
        for name in ("target_train", "forget", "out"):
            tracking.log_data_input(split_path(name), context=name)
        curves: list[tuple[int, dict[str, float]]] = []
        progress = Progress(f"unlearn {method}", 1)

        def on_step(step: int, values: dict[str, float]) -> None:
            # Buffered, logged after the clock stops: tracking I/O is not unlearning.
            curves.append((step, values))
            progress.detail(f"step {step}")

        task = load_task(params, dataset, method, device, on_step=on_step)
        start = starting_model_for(method)
        print(f"unlearn {method}: from {start.describe()}; {len(task.forget[1])} samples to forget", flush=True)
        model, seconds = run_method(method, task)
        progress.advance(f"{seconds:.1f} s")
        model.cpu()
        tracking.log_curves(curves)
        metrics = {"unlearn_seconds": seconds, "threads": torch.get_num_threads(),
                   "forgotten_samples": len(task.forget[1]), "start_release_version": start.registered_version or 0}

        model_uri = tracking.log_torch_model(model, f"{method}_model", dataset.inputs[:2].numpy())

        # The model directory holds the weights only, so a reproduced model keeps its hash; the
        # seconds and the run that measured them go beside it.
        replace_dir(unlearned_dir(method), lambda directory: save_model(directory, model, params.model, dataset))
        write_json(unlearn_metrics_path(method), metrics)
        tracking.write_run_record(run_record_path(f"unlearn/{method}"), run, model_uri=model_uri,
                                  device=describe(device),
                                  pipeline_run_id=os.environ.get(tracking.PARENT_RUN_ENV, "none"))
        tracking.log_metrics(metrics)


if __name__ == "__main__":
    stage_main(main)
