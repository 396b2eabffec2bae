"""Why ReMI's forgetting quality falls short of retraining's: its two causes, measured apart.

    remi fq-anatomy [--variants NAME ...]    (after `remi run`; uses its artifacts)
        -> reports/forgetting_quality_anatomy.md, metrics/forgetting_quality_anatomy.json

Forgetting quality (remi/audit/forgetting_quality.py) compares, per forget sample, the statistic of M
unlearned models with that of M retrained ones. Two populations can differ per sample in where they
sit (the mean over their M models) and in how widely they scatter (the spread across seeds).
Retrained models scatter by their initial weights and batch order; every ReMI run starts from the
same trained model, so its runs scatter only as far as its own seed moves them. This tool trains the
stage's 2M retrained models (same seeds), runs each variant of `remi ablation` M times (same seeds as
the stage), and reports for each: the forgetting quality, the mean per-sample distance to retraining's
population and the spread across seeds (both in logit units, with retrain-vs-retrain's alongside),
and the quality of two counterfactual populations: the variant's runs moved onto an independent
retrained population's per-sample means (only the spread differs), and the retrained runs moved onto
the variant's means (only the location differs).
"""

import time

import numpy as np

from remi.audit.ablation import chosen_variants
from remi.audit.forgetting_quality import (
    forgetting_quality,
    per_example_epsilon,
    population_statistics,
    retrained_populations,
    unlearned_seeds,
)
from remi.catalog import REFERENCE
from remi.data.datasets import load_dataset
from remi.data.splits import load_split
from remi.params_schema import ForgettingQuality
from remi.pipeline.layout import REPORTS_DIR, metrics_path, split_path
from remi.pipeline.params import load_params, validate
from remi.pipeline.tasks import load_task
from remi.runtime.device import compute_device, configure_threads, hardware
from remi.runtime.files import write_bytes, write_json

STEM = "forgetting_quality_anatomy"


def run_forgetting_anatomy(variants: list[str] | None) -> None:
    """Each chosen variant (default: only ReMI's own params) M times, against 2M retrained models."""
    chosen = chosen_variants(variants or ["default"])
    configure_threads()
    params = load_params()
    settings = params.forgetting_quality
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    device = compute_device()
    forget = dataset.subset(load_split(split_path("forget")))
    count = settings.models
    started = time.perf_counter()
    reference, second = retrained_populations(load_task(params, dataset, REFERENCE, device), settings, forget)
    print(f"{2 * count} retrained models in {time.perf_counter() - started:.0f} s", flush=True)
    rows = {"retrain vs retrain": anatomy(second, reference, second, settings)}
    for name, overrides in chosen.items():
        variant = validate(params.model_dump() | {"remi": params.remi.model_dump() | overrides})
        task = load_task(variant, dataset, "remi", device)
        unlearned = population_statistics(task, "remi", unlearned_seeds(settings), forget)
        rows[name] = anatomy(unlearned, reference, second, settings)
        print(f"{name}: forgetting quality {rows[name]['forgetting_quality']:.3f}", flush=True)
    write_json(metrics_path(STEM), {"dataset": params.data.dataset, "models_per_population": count, "rows": rows})
    report = _report(rows, params.data.dataset, count)
    write_bytes(REPORTS_DIR / f"{STEM}.md", report.encode())
    print(report)


def anatomy(population: np.ndarray, reference: np.ndarray, independent: np.ndarray,
            settings: ForgettingQuality) -> dict[str, float]:
    """`population` (models, samples) against the retrained `reference`; `independent` is a second
    retrained population, whose per-sample means stand for "where retraining sits" in the counterfactual
    that keeps the population's own spread (its means are not `reference`'s, which would flatter it)."""
    def quality(candidate: np.ndarray) -> float:
        return forgetting_quality(per_example_epsilon(candidate, reference, settings.delta), settings.bin_width)

    centre = population.mean(0)
    return {
        "forgetting_quality": quality(population),
        "distance_to_retraining": float(np.abs(centre - reference.mean(0)).mean()),
        "spread": float(population.std(0).mean()),
        "quality_with_retrainings_location": quality(population - centre + independent.mean(0)),
        "quality_with_retrainings_spread": quality(independent - independent.mean(0) + centre),
    }


def _report(rows: dict[str, dict[str, float]], dataset: str, count: int) -> str:
    lines = ["# Forgetting quality, taken apart", "",
             f"`remi fq-anatomy` on the pipeline's {dataset} artifacts; {hardware()}. M = {count} models per "
             "population, the forgetting-quality stage's seeds. Distance: mean over forget samples of the absolute "
             "difference of per-sample means to retraining's (logit-scaled confidence); spread: mean per-sample "
             "standard deviation across the M runs. The last two columns move one population so that only the "
             "other property differs from retraining (remi/audit/forgetting_anatomy.py).", "",
             "| population | forgetting quality | distance to retraining | spread across seeds "
             "| quality with retraining's location | quality with retraining's spread |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {r['forgetting_quality']:.3f} | {r['distance_to_retraining']:.2f} | {r['spread']:.2f} | "
              f"{r['quality_with_retrainings_location']:.3f} | {r['quality_with_retrainings_spread']:.3f} |"
              for name, r in rows.items()]
    return "\n".join(lines) + "\n"
