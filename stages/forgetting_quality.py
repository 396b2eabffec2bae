"""Stage forgetting_quality: M retrained and M unlearned models per method, compared per forget sample.

Also M more retrained models: retrain-vs-retrain is the best score the estimator can give.
"""

import time

import numpy as np

from remi.audit.forgetting_quality import (
    forgetting_quality,
    largest_certifiable_epsilon,
    per_example_epsilon,
    population_statistics,
    retrained_populations,
    unlearned_seeds,
)
from remi.catalog import REFERENCE
from remi.data.datasets import load_dataset
from remi.data.splits import load_split
from remi.pipeline import tracking
from remi.pipeline.entry_point import stage_main
from remi.pipeline.layout import REPORTS_DIR, metrics_path, split_path
from remi.pipeline.params import load_params
from remi.pipeline.tasks import load_task
from remi.runtime.device import compute_device
from remi.runtime.files import atomic_write, write_json
from remi.runtime.progress import Progress


def main() -> None:
    params = load_params()
    settings = params.forgetting_quality
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    forget_ids = load_split(split_path("forget"))
    forget = dataset.subset(forget_ids)
    count, device = settings.models, compute_device()
    others = [m for m in params.unlearn.methods if m != REFERENCE]
    sections = {"forgetting_quality": settings} | {m: params.method(m) for m in [REFERENCE, *others]}
    with tracking.stage_run("forgetting_quality", "forgetting_quality", sections, ["prepare", "target"]):
        started = time.perf_counter()
        progress = Progress("forgetting-quality models", count * (2 + len(others)))
        # Both retrained populations in one go, as blocks on one executor.
        reference, second, executor = retrained_populations(load_task(params, dataset, REFERENCE, device), settings,
                                                            forget, progress)
        tracking.set_tags({"executor": executor})  # where the retrainings ran, as the shadows' stages record
        epsilons = {"retrain_vs_retrain": per_example_epsilon(second, reference, settings.delta)}
        for method in others:
            unlearned = population_statistics(load_task(params, dataset, method, device), method,
                                              unlearned_seeds(settings), forget, progress=progress)
            epsilons[method] = per_example_epsilon(unlearned, reference, settings.delta)
        metrics = {f"{name}/forgetting_quality": forgetting_quality(eps, settings.bin_width)
                   for name, eps in epsilons.items()}
        metrics |= {f"{name}/mean_epsilon": float(np.mean(eps)) for name, eps in epsilons.items()}
        metrics["models_per_population"] = count
        metrics["largest_certifiable_epsilon"] = largest_certifiable_epsilon(count, settings.delta)
        metrics["stage_seconds"] = time.perf_counter() - started
        rows = ["population,sample_id,epsilon"] + [f"{name},{i},{e:.4f}" for name, eps in epsilons.items()
                                                   for i, e in zip(forget_ids.tolist(), eps, strict=True)]
        atomic_write(REPORTS_DIR / "forgetting_quality.csv", lambda tmp: tmp.write_text("\n".join(rows) + "\n"))
        write_json(metrics_path("forgetting_quality"), metrics)
        tracking.log_metrics(metrics)


if __name__ == "__main__":
    stage_main(main)
