"""ReMI's ablations and sweeps, each one params switch, audited like the pipeline audits a method.

    remi ablation [--seeds 0 1 2]    (after `remi run`; uses its artifacts)
        -> reports/remi_ablation.md, metrics/remi_ablation.json

Every variant is `remi` with some of its params.yaml keys changed (the table names them): the leakage
estimator (shadow_attack, loss_threshold, class_gaussian), without the MI term (lambda_mi 0), without the KL
term (lambda_kl 0), without both, and lambda sweeps. Each runs once per ReMI seed on the pipeline's
target, splits and attack, in this process; the audit's attacks score it on forget vs audit_holdout,
and its gaps are to the pipeline's retrained model (models/unlearned/retrain), averaged over the same
metrics as the audit's average gap. Seconds / retrain uses the pipeline's retrain seconds (another
process), so treat that column as indicative.
"""

from pathlib import Path
from typing import Any

import torch

from remi.audit.comparison import mean_std
from remi.audit.inputs import load_attack_inputs, load_audit_sets
from remi.audit.scoring import gap_metrics, gaps_to_reference, model_metrics, score_model
from remi.data.datasets import load_dataset
from remi.networks.checkpoints import load_model
from remi.params_schema import Params
from remi.pipeline.layout import unlearn_metrics_path, unlearned_dir
from remi.pipeline.params import load_params, validate
from remi.pipeline.seeds import hardware
from remi.pipeline.starting_model import read_starting_model
from remi.pipeline.starting_weights import load_starting_model
from remi.pipeline.tasks import load_task
from remi.runtime.device import compute_device, configure_threads
from remi.runtime.files import read_json, write_bytes, write_json
from remi.unlearning import run_method

VARIANTS: dict[str, dict[str, object]] = {
    "default": {},
    "estimator loss_threshold": {"estimator": "loss_threshold"},
    "estimator class_gaussian": {"estimator": "class_gaussian"},
    "no MI term": {"lambda_mi": 0.0},
    "no KL term": {"lambda_kl": 0.0},
    "no MI, no KL (fidelity only)": {"lambda_mi": 0.0, "lambda_kl": 0.0},
    "lambda_mi 0.25": {"lambda_mi": 0.25},
    "lambda_mi 1": {"lambda_mi": 1.0},
    "lambda_mi 2": {"lambda_mi": 2.0},
    "lambda_kl 0.5": {"lambda_kl": 0.5},
    "lambda_kl 3": {"lambda_kl": 3.0},
}
COLUMNS = ("forget_accuracy", "test_accuracy", "shadow_attack_auc", "loss_attack_auc", "lira_fixed_variance_auc",
           "rmia_auc", "average_gap", "seconds")


def run_ablation(seeds: list[int]) -> None:
    """Every variant once per ReMI seed -> reports/remi_ablation.md and metrics/remi_ablation.json."""
    configure_threads()
    params = load_params()
    audit = params.audit
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    sets = load_audit_sets(audit)
    device = compute_device()
    inputs = load_attack_inputs(params, dataset, sets, device)

    def metrics_of(model: torch.nn.Module) -> dict[str, float]:
        return model_metrics(model, dataset, sets, score_model(model, dataset, sets, inputs, audit.attacks),
                             audit.low_fprs)

    fixed = {"target": metrics_of(load_starting_model(read_starting_model(), device)),
             "retrain": metrics_of(load_model(unlearned_dir("retrain"), device))}
    retrain_seconds = read_json(unlearn_metrics_path("retrain"))["unlearn_seconds"]
    results: dict[str, list[dict[str, float]]] = {}
    for name, overrides in VARIANTS.items():
        variant = validate(params.model_dump() | {"remi": params.remi.model_dump() | overrides})
        for seed in seeds:
            seeded = variant.model_copy(update={"remi": variant.remi.model_copy(update={"seed": seed})})
            model, seconds = run_method("remi", load_task(seeded, dataset, "remi", device))
            per_model = fixed | {"remi": metrics_of(model) | {"seconds": seconds}}
            gaps = gaps_to_reference(per_model, gap_metrics(audit.attacks, audit.low_fprs))["remi"]
            results.setdefault(name, []).append(per_model["remi"] | gaps)
            print(f"{name:32s} seed {seed}: average gap {gaps['average_gap']:.4f}, {seconds:.2f} s", flush=True)
    summary: dict[str, dict[str, Any]] = {}
    for name, runs in results.items():
        summary[name] = {key: mean_std([run[key] for run in runs]) for key in COLUMNS}
        summary[name] |= {"seconds_ratio_to_retrain": summary[name]["seconds"]["mean"] / retrain_seconds,
                          "switches": VARIANTS[name]}
    write_json(Path("metrics/remi_ablation.json"), {"dataset": params.data.dataset, "seeds": seeds,
                                                    "variants": summary, "target": fixed["target"],
                                                    "retrain": fixed["retrain"]})
    write_bytes(Path("reports/remi_ablation.md"), _report(summary, fixed, params, seeds, retrain_seconds).encode())
    print(Path("reports/remi_ablation.md").read_text())


def _report(summary: dict, fixed: dict, params: Params, seeds: list[int], retrain_seconds: float) -> str:
    lines = ["# ReMI ablations and sweeps", "",
             f"`remi ablation --seeds {' '.join(map(str, seeds))}` on the pipeline's "
             f"{params.data.dataset} artifacts ({params.model.arch}); cells are mean ± std over ReMI "
             f"seeds {', '.join(map(str, seeds))}; {hardware()}. "
             f"Retrain took {retrain_seconds:.1f} s in the pipeline run.", "",
             "| variant | switches | " + " | ".join(COLUMNS) + " | s / retrain s |",
             "|---" * (len(COLUMNS) + 3) + "|"]
    for name in ("target", "retrain"):
        cells = [f"{fixed[name][k]:.3f}" if k in fixed[name] else "" for k in COLUMNS]
        lines.append(f"| {name} (pipeline) |  | " + " | ".join(cells) + " |  |")
    for name, values in summary.items():
        switches = ", ".join(f"remi.{k}={v}" for k, v in values["switches"].items()) or "params.yaml"
        cells = [f"{values[k]['mean']:.3f} ± {values[k]['std']:.3f}" for k in COLUMNS]
        lines.append(f"| {name} | {switches} | " + " | ".join(cells) + f" | {values['seconds_ratio_to_retrain']:.3f} |")
    return "\n".join(lines) + "\n"

