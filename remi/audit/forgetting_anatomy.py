"""Why ReMI's forgetting quality falls short of retraining's: its two causes, measured apart.

    remi fq-anatomy [--variants NAME ...] [--models M] [--online-references]   (after `remi run`; uses its artifacts)
        -> reports/forgetting_quality_anatomy.md, metrics/forgetting_quality_anatomy.json
           (with --models M: forgetting_quality_anatomy_m<M>.md and .json; with --online-references:
           *_online_references.md and .json)

Forgetting quality (remi/audit/forgetting_quality.py) compares, per forget sample, the statistic of M
unlearned models with that of M retrained ones. Two populations can differ per sample in where they
sit (the mean over their M models) and in how widely they scatter (the spread across seeds).
Retrained models scatter by their initial weights and batch order; every ReMI run starts from the
same trained model, so its runs scatter only as far as its own seed moves them. This tool trains the
stage's 2M retrained models (same seeds), runs each variant of `remi ablation` M times (same seeds as
the stage), and reports for each: the forgetting quality, the mean per-sample distance to retraining's
population (with its signed mean, the part one shift of every sample would remove, and the correlation
of the per-sample means with retraining's) and the spread across seeds (in logit units, with
retrain-vs-retrain's alongside),
and the quality of two counterfactual populations: the variant's runs moved onto an independent
retrained population's per-sample means (only the spread differs), and the retrained runs moved onto
the variant's means (only the location differs). Two more ask whether a rule that places
each forget sample by what ReMI can see could do better: the population's runs moved onto the per-sample
means that the target's statistic and the shadows' mean predict, linearly, fitted to retraining itself
(`predicted_location`), and onto those that the same two and the retain set's nearest neighbours of each
sample predict (`retain_neighbour_features`).

One more row takes the first M shadows as if they were unlearned models. ReMI's per-example reference
and its unseen-model teachers are these shadows, so the row is what a perfect imitation of them would
score; they never trained on the forget samples, but they trained on other data than the retain set,
and a sample's confidence depends on the data a model saw. Another row does the same with, for each
forget sample, the first M online shadows that never trained on it: they trained on halves of a pool
that holds the retain set, so they saw much of retraining's data (only samples with M such shadows
count, retrain-vs-retrain on the same samples is shown beside it, and the row is left out with a note
when fewer than half the forget samples have them). `--models` sets M for this tool only (the
stage's M is params.yaml's): the estimate's resolution grows with M (its largest certifiable epsilon is
reported), and a ratio measured at M = 3 need not hold at M = 8. `--online-references` runs the variants
with the online shadows as ReMI's references, each on the samples it never trained on: does ReMI, given
teachers closer to retraining, come closer to it (`remi ablation --online-references`)?
"""

import copy
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from remi.attacks.signals import logit_scaled_confidence
from remi.audit.ablation_variants import chosen_variants
from remi.audit.forgetting_quality import (
    forgetting_quality,
    largest_certifiable_epsilon,
    model_statistics,
    per_example_epsilon,
    population_statistics,
    retrained_populations,
    unlearned_seeds,
)
from remi.catalog import REFERENCE
from remi.data.datasets import load_dataset
from remi.data.splits import load_split
from remi.networks.checkpoints import load_shadow_outputs, positions_in_pool
from remi.params_schema import ForgettingQuality, Params
from remi.pipeline import tracking
from remi.pipeline.layout import ONLINE_SHADOWS_DIR, REPORTS_DIR, metrics_path, shadow_dir, split_path
from remi.pipeline.params import load_params, validate
from remi.pipeline.tasks import load_task
from remi.runtime.device import compute_device, configure_threads, hardware
from remi.runtime.files import write_bytes, write_json
from remi.unlearning.base import Samples, UnlearningTask
from remi.unlearning.neighbour_target import margins_and_votes
from remi.unlearning.remi import frozen_features, split_head

STEM = "forgetting_quality_anatomy"
SHADOWS_ROW = "shadows as unlearned models ({count}: other data, never the forget set)"
ONLINE_ROW = "online shadows that never trained on the sample ({count} each; {samples} samples)"
SAME_SAMPLES_ROW = "retrain vs retrain (the same {samples} samples)"
NEIGHBOURS_LOCATION = "location_predicted_with_neighbours"  # the target, the shadows and the retain set's neighbours


def run_forgetting_anatomy(variants: list[str] | None, models: int | None = None,
                           online_references: bool = False) -> None:
    """Each chosen variant (default: only ReMI's own params) M times, and the shadows, against 2M retrained
    models; M is params.yaml's forgetting_quality.models unless `models` is given."""
    chosen = chosen_variants(variants or ["default"])
    configure_threads()
    params = load_params()
    if models is not None:
        params = validate(params.model_dump()
                          | {"forgetting_quality": params.forgetting_quality.model_dump() | {"models": models}},
                          source="params.yaml with --models")
    settings = params.forgetting_quality
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    device = compute_device()
    forget_ids = load_split(split_path("forget"))
    forget = dataset.subset(forget_ids)
    count = settings.models
    started = time.perf_counter()
    reference, second, _ = retrained_populations(load_task(params, dataset, REFERENCE, device), settings, forget)
    print(f"{2 * count} retrained models in {time.perf_counter() - started:.0f} s", flush=True)
    remi_task = load_task(params, dataset, "remi", device)
    shadow_statistics = model_statistics(remi_task.references, forget)
    target_statistic = model_statistics([remi_task.original], forget)[0]
    predicted = {"predicted_location": predicted_location(target_statistic, shadow_statistics, second),
                 NEIGHBOURS_LOCATION: predicted_location(target_statistic, shadow_statistics, second,
                                                         retain_neighbour_features(remi_task, forget))}
    rows = {"retrain vs retrain": anatomy(second, reference, second, predicted, settings)}
    first_shadows = shadow_statistics[:count]
    rows[SHADOWS_ROW.format(count=len(first_shadows))] = anatomy(first_shadows, reference, second, predicted,
                                                                settings)
    online, enough = online_out_population(params, forget_ids, forget[1], count)
    samples = int(enough.sum())
    online_row = samples >= len(forget_ids) / 2  # on fewer it would describe an unusual few, not the forget set
    if online_row:
        on_enough = {name: location[enough] for name, location in predicted.items()}
        rows[SAME_SAMPLES_ROW.format(samples=samples)] = anatomy(second[:, enough], reference[:, enough],
                                                                 second[:, enough], on_enough, settings)
        rows[ONLINE_ROW.format(count=count, samples=samples)] = anatomy(online, reference[:, enough],
                                                                        second[:, enough], on_enough, settings)
    for name, overrides in chosen.items():
        variant = validate(params.model_dump() | {"remi": params.remi.model_dump() | overrides})
        task = load_task(variant, dataset, "remi", device, online_references=online_references)
        unlearned = population_statistics(task, "remi", unlearned_seeds(settings), forget)
        rows[name] = anatomy(unlearned, reference, second, predicted, settings)
        print(f"{name}: forgetting quality {rows[name]['forgetting_quality']:.3f}", flush=True)
    resolution = largest_certifiable_epsilon(count, settings.delta)
    # Another M than the stage's writes beside the stage-M report instead of over it.
    stem = (STEM if models is None else f"{STEM}_m{count}") + ("_online_references" if online_references else "")
    numbers, report_path = metrics_path(stem), REPORTS_DIR / f"{stem}.md"
    prediction_fit = {name: float(np.corrcoef(location, reference.mean(0))[0, 1])
                      for name, location in predicted.items()}
    references = "online shadows" if online_references else "shadows"
    write_json(numbers, {"dataset": params.data.dataset, "models_per_population": count,
                         "remi_references": references,
                         "largest_certifiable_epsilon": resolution,
                         "predicted_location_correlation": prediction_fit["predicted_location"],
                         f"{NEIGHBOURS_LOCATION}_correlation": prediction_fit[NEIGHBOURS_LOCATION],
                         "rows": rows})
    online_note = ("" if online_row else
                   f"No online-shadow row: {samples} of {len(forget_ids)} forget samples have {count} of the "
                   f"{params.online_shadows.count} online shadows that never trained on them (each misses about "
                   f"half; about {2 * count} online shadows would give most of them).")
    report = _report(rows, params.data.dataset, count, resolution, prediction_fit, online_note, online_references)
    write_bytes(report_path, report.encode())
    # After the files: a tracking store that fails here loses none of the results.
    _log_to_mlflow(rows, settings, resolution, list(chosen), [numbers, report_path], references)
    print(report)


def _log_to_mlflow(rows: dict[str, dict[str, float]], settings: ForgettingQuality, resolution: float,
                   variants: list[str], files: list[Path], references: str) -> None:
    """One MLflow run (the report and its numbers as artifacts, the estimator's resolution) and a child run per
    population with its row's figures, beside the forgetting-quality stage's runs."""
    sections = {"forgetting_quality": settings, "variants": ", ".join(variants), "remi_references": references}
    with tracking.stage_run("fq_anatomy", "fq_anatomy", sections, ["prepare", "target", "shadows"]) as parent:
        tracking.log_metrics({"largest_certifiable_epsilon": resolution})
        for path in files:
            tracking.log_artifacts(path, "fq_anatomy")
        for name, figures in rows.items():
            with tracking.stage_run("fq_anatomy", name, {"population": name}, parent_run_id=parent.info.run_id):
                tracking.log_metrics(figures)


def online_out_population(params: Params, forget_ids: torch.Tensor, labels: torch.Tensor,
                          count: int) -> tuple[np.ndarray, np.ndarray]:
    """For each forget sample, the statistic of the first `count` online shadows (in their order) that never
    trained on it, from their saved outputs: (count, samples that have `count` such shadows), and the mask
    of those samples. About half the online shadows miss each sample, so few samples have M of them
    when M nears the number of online shadows."""
    outputs = [load_shadow_outputs(shadow_dir(index, ONLINE_SHADOWS_DIR))
               for index in range(params.online_shadows.count)]
    at = positions_in_pool(outputs, forget_ids, "forget")
    statistic = np.stack([logit_scaled_confidence(o["logits"][at], labels).double().numpy() for o in outputs])
    member = np.stack([o["is_member"][at].numpy() for o in outputs])
    enough = (~member).sum(0) >= count
    never_trained_first = np.argsort(member, axis=0, kind="stable")  # False (never trained on it) sorts first
    return np.take_along_axis(statistic, never_trained_first, axis=0)[:count, enough], enough


def predicted_location(target: np.ndarray, shadows: np.ndarray, retrained: np.ndarray,
                       more: np.ndarray | None = None) -> np.ndarray:
    """Per forget sample, retraining's mean statistic as well as a linear rule over things ReMI sees can
    predict it: the least-squares fit of `retrained`'s (models, samples) per-sample means on the target's
    statistic, the mean of the `shadows`' (models, samples), `more` (samples, features), if given, and a
    constant. A per-sample stop rule or target linear in these cannot place the samples better than this fit to
    retraining itself, so the quality at this location, at a population's own spread, is the best case of such a
    rule. Fit it to the second retrained population, not to the reference one that the quality is scored
    against: that fit would take up the reference's own noise and flatter it."""
    columns = [target, shadows.mean(0), *([] if more is None else more.T), np.ones_like(target)]
    inputs = np.stack(columns, axis=1)
    weights, *_ = np.linalg.lstsq(inputs, retrained.mean(0), rcond=None)
    return inputs @ weights


def retain_neighbour_features(task: UnlearningTask, forget: Samples) -> np.ndarray:
    """(samples, 4): what the retain set's nearest neighbours say of each forget sample, the features a target read
    from the retain set would have (ReMI holds the retain set; a retrained model's confidence on a sample depends on
    which retain samples lie near it): its margin (how much nearer the retain samples of its class lie than the
    others') and whether its k nearest vote its label, in input space and in the target's last hidden features
    (where the network has learnt what is near). A sample whose class has no retain sample left has a margin of
    minus infinity; it takes the smallest finite one."""
    frozen, _ = split_head(copy.deepcopy(task.original).eval(), 1)
    columns = []
    with torch.no_grad():
        for space in (nn.Identity(), frozen):
            margins, votes_right = margins_and_votes((frozen_features(space, task.retain[0]), task.retain[1]),
                                                     (frozen_features(space, forget[0]), forget[1]))
            margin = margins.double().numpy()
            finite = margin[np.isfinite(margin)]
            columns += [np.clip(margin, finite.min(initial=np.inf), finite.max(initial=-np.inf)),
                        votes_right.double().cpu().numpy()]
    return np.stack(columns, axis=1)


def anatomy(population: np.ndarray, reference: np.ndarray, independent: np.ndarray,
            predicted: dict[str, np.ndarray], settings: ForgettingQuality) -> dict[str, float]:
    """`population` (models, samples) against the retrained `reference`; `independent` is a second
    retrained population, whose per-sample means stand for "where retraining sits" in the counterfactual
    that keeps the population's own spread (its means are not `reference`'s, which would flatter it);
    `predicted` names per-sample locations from `predicted_location`, for the counterfactuals that move the
    population there (keeping its own spread): figure `quality_at_<name>` each."""
    def quality(candidate: np.ndarray) -> float:
        return forgetting_quality(per_example_epsilon(candidate, reference, settings.delta), settings.bin_width)

    centre, retrainings = population.mean(0), reference.mean(0)
    return {
        "forgetting_quality": quality(population),
        "distance_to_retraining": float(np.abs(centre - retrainings).mean()),
        # A distance that is mostly one shift of every sample (a global drop in confidence) would show here,
        # and could be corrected at once; one that is sample by sample shows as a correlation below
        # retrain-vs-retrain's.
        "offset_from_retraining": float((centre - retrainings).mean()),
        "correlation_with_retraining": float(np.corrcoef(centre, retrainings)[0, 1]),
        "spread": float(population.std(0).mean()),
        "quality_with_retrainings_location": quality(population - centre + independent.mean(0)),
        "quality_with_retrainings_spread": quality(independent - independent.mean(0) + centre),
        **{f"quality_at_{name}": quality(population - centre + location) for name, location in predicted.items()},
    }


def _report(rows: dict[str, dict[str, float]], dataset: str, count: int, resolution: float,
            prediction_fit: dict[str, float], online_note: str, online_references: bool) -> str:
    references = (" The variants' ReMI took the online shadows as its references, each on the samples it never "
                  "trained on (`--online-references`); the predicted locations still come from the target, the "
                  "shadows and the retain set." if online_references else "")
    lines = ["# Forgetting quality, taken apart", "",
             f"`remi fq-anatomy` on the pipeline's {dataset} artifacts; {hardware()}. M = {count} models per "
             f"population (largest certifiable epsilon {resolution:.2f}), the forgetting-quality stage's seeds; "
             "the shadows' row takes the first M shadows as the unlearned population (ReMI's teachers, trained "
             "on other data). Distance: mean over forget samples of the absolute "
             "difference of per-sample means to retraining's (logit-scaled confidence); offset: the same "
             "differences' signed mean (a shift of every sample alike); correlation: of the per-sample means with "
             "retraining's; spread: mean per-sample standard deviation across the M runs. The next two columns "
             "move one population so that only the other property differs from retraining. The last two move the "
             "population's runs onto the per-sample means that a least-squares fit to the second retrained "
             "population predicts: from the target's statistic and the shadows' mean (correlation with "
             f"retraining's means {prediction_fit['predicted_location']:.3f}), and from those and the retain set's "
             "nearest neighbours of each sample, their margin and vote in input space and in the target's last "
             f"hidden features ({prediction_fit[NEIGHBOURS_LOCATION]:.3f}): the best case of a per-sample target "
             "linear in those, at the population's own spread (remi/audit/forgetting_anatomy.py)."
             f"{references}", "",
             "| population | forgetting quality | distance to retraining | offset | correlation "
             "| spread across seeds | quality with retraining's location | quality with retraining's spread "
             "| quality at the predicted location | ... with the retain set's neighbours |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {name} | {r['forgetting_quality']:.3f} | {r['distance_to_retraining']:.2f} | "
              f"{r['offset_from_retraining']:+.2f} | {r['correlation_with_retraining']:.3f} | {r['spread']:.2f} | "
              f"{r['quality_with_retrainings_location']:.3f} | {r['quality_with_retrainings_spread']:.3f} | "
              f"{r['quality_at_predicted_location']:.3f} | {r[f'quality_at_{NEIGHBOURS_LOCATION}']:.3f} |"
              for name, r in rows.items()]
    if online_note:
        lines += ["", online_note]
    return "\n".join(lines) + "\n"
