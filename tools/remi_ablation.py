"""ReMI's ablations and sweeps, each one params switch, audited like the pipeline audits a method.

    python tools/remi_ablation.py [--seeds 0 1 2]    (after `make run`; uses its artifacts)
        -> reports/remi_ablation.md, metrics/remi_ablation.json

Every variant is `remi` with some of its params.yaml keys changed (the table names them): the leakage
estimator (shadow_attack, loss_threshold, lira), without the MI term (lambda_mi 0), without the KL
term (lambda_kl 0), without both, and lambda sweeps. Each runs once per ReMI seed on the pipeline's
target, splits and attack, in this process; the audit's attacks score it on forget vs audit_holdout,
and its gaps are to the pipeline's retrained model (models/unlearned/retrain), averaged over the same
metrics as the audit's average gap. Seconds / retrain uses the pipeline's retrain seconds (another
process), so treat that column as indicative.
"""

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compare_table import mean_std  # tools/ is on sys.path when run as a script
from run_seeds import hardware

from remi.artifacts import load_model
from remi.audit import gap_metrics, gaps_to_reference, model_metrics, score_model
from remi.audit_inputs import load_attack_inputs, load_audit_sets
from remi.datasets import load_dataset
from remi.device import compute_device
from remi.io import read_json, write_bytes, write_json
from remi.layout import TARGET_DIR, unlearn_metrics_path, unlearned_dir
from remi.params import load_params, validate
from remi.tasks import load_task
from remi.unlearning import run_method

VARIANTS: dict[str, dict[str, object]] = {
    "default": {},
    "estimator loss_threshold": {"estimator": "loss_threshold"},
    "estimator lira": {"estimator": "lira"},
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    params = load_params()
    audit = params["audit"]
    dataset = load_dataset(params["data"]["dataset"], params["data"]["raw_dir"])
    sets = load_audit_sets(audit)
    device = compute_device()
    inputs = load_attack_inputs(params, dataset, sets, device)

    def metrics_of(model: torch.nn.Module) -> dict[str, float]:
        return model_metrics(model, dataset, sets, score_model(model, dataset, sets, inputs, audit["attacks"]),
                             audit["low_fprs"])

    fixed = {"target": metrics_of(load_model(TARGET_DIR, device)),
             "retrain": metrics_of(load_model(unlearned_dir("retrain"), device))}
    retrain_seconds = read_json(unlearn_metrics_path("retrain"))["unlearn_seconds"]
    results: dict[str, list[dict[str, float]]] = {}
    for name, overrides in VARIANTS.items():
        variant = params | {"remi": params["remi"] | overrides}
        validate(variant)
        for seed in args.seeds:
            variant["remi"]["seed"] = seed
            model, seconds = run_method("remi", load_task(variant, dataset, "remi", device))
            per_model = fixed | {"remi": metrics_of(model) | {"seconds": seconds}}
            gaps = gaps_to_reference(per_model, gap_metrics(audit["attacks"], audit["low_fprs"]))["remi"]
            results.setdefault(name, []).append(per_model["remi"] | gaps)
            print(f"{name:32s} seed {seed}: average gap {gaps['average_gap']:.4f}, {seconds:.2f} s", flush=True)
    summary = {}
    for name, runs in results.items():
        summary[name] = {key: mean_std([run[key] for run in runs]) for key in COLUMNS}
        summary[name] |= {"seconds_ratio_to_retrain": summary[name]["seconds"]["mean"] / retrain_seconds,
                          "switches": VARIANTS[name]}
    write_json(Path("metrics/remi_ablation.json"), {"dataset": params["data"]["dataset"], "seeds": args.seeds,
                                                    "variants": summary, "target": fixed["target"],
                                                    "retrain": fixed["retrain"]})
    write_bytes(Path("reports/remi_ablation.md"), _report(summary, fixed, params, args.seeds, retrain_seconds).encode())
    print(Path("reports/remi_ablation.md").read_text())


def _report(summary: dict, fixed: dict, params: dict, seeds: list[int], retrain_seconds: float) -> str:
    lines = ["# ReMI ablations and sweeps", "",
             f"`python tools/remi_ablation.py --seeds {' '.join(map(str, seeds))}` on the pipeline's "
             f"{params['data']['dataset']} artifacts ({params['model']['arch']}); cells are mean ± std over ReMI "
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


if __name__ == "__main__":
    main()
