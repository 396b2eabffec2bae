"""The audit: accuracy and membership-inference metrics per model, gaps to retraining, goal checks."""

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from remi.attacks.audit_attacks import ATTACKS, MIA_EFFICACY_THRESHOLD, AttackInputs, Scores
from remi.attacks.roc import fpr_label, membership_metrics
from remi.attacks.shadow_attack_model import AttackModel
from remi.catalog import REFERENCE
from remi.data.datasets import Dataset
from remi.errors import ParamsError
from remi.networks.training import accuracy, predict_logits
from remi.params_schema import Audit


@dataclass
class AuditSets:
    """Sample IDs per part. Members: forget; non-members: audit_holdout. `retain` is a sample of the
    retain set (scored for histograms); `retain_all` gives retain accuracy; `fit_members` and
    `fit_nonmembers` (retain and test samples) fit MIA-efficacy; `population` (test samples) serves
    RMIA. All parts that are scored or fitted on are disjoint."""

    forget: torch.Tensor
    retain: torch.Tensor
    audit_holdout: torch.Tensor
    retain_all: torch.Tensor
    test: torch.Tensor
    fit_members: torch.Tensor
    fit_nonmembers: torch.Tensor
    population: torch.Tensor

    @classmethod
    def draw(cls, forget: torch.Tensor, retain_all: torch.Tensor, audit_holdout: torch.Tensor,
             test: torch.Tensor, audit_params: Audit) -> "AuditSets":
        generator = torch.Generator().manual_seed(audit_params.seed)
        retain_order = retain_all[torch.randperm(len(retain_all), generator=generator)]
        test_order = test[torch.randperm(len(test), generator=generator)]
        scored, fitted = audit_params.retain_samples, audit_params.fit_samples
        if scored + fitted >= len(retain_all):  # MIA-efficacy's classifier would fit on no member at all
            raise ParamsError(f"audit.retain_samples + audit.fit_samples = {scored + fitted}, but the retain set "
                              f"(target_train less the forget set) holds {len(retain_all)}: lower them.")
        return cls(forget=forget, retain=retain_order[:scored], audit_holdout=audit_holdout,
                   retain_all=retain_all, test=test,
                   fit_members=retain_order[scored : scored + fitted],
                   fit_nonmembers=test_order[:fitted],
                   population=test_order[fitted : fitted + audit_params.population_samples])

    def attack_parts(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in
                ("forget", "retain", "audit_holdout", "fit_members", "fit_nonmembers", "population")}


def attack_inputs(dataset: Dataset, sets: AuditSets, references: list[nn.Module], attack_model: AttackModel,
                  audit_params: Audit) -> AttackInputs:
    parts = sets.attack_parts()
    return AttackInputs(
        labels={p: dataset.labels[ids] for p, ids in parts.items()},
        reference_logits={p: torch.stack([predict_logits(r, dataset.inputs[ids]) for r in references])
                          for p, ids in parts.items()},
        attack_model=attack_model, rmia_offline_a=audit_params.rmia_offline_a)


def score_model(model: nn.Module, dataset: Dataset, sets: AuditSets, inputs: AttackInputs,
                attacks: list[str]) -> dict[str, Scores]:
    """attack -> scored part -> per-example scores (higher = member)."""
    logits = {p: predict_logits(model, dataset.inputs[ids]) for p, ids in sets.attack_parts().items()}
    return {name: ATTACKS[name](logits, inputs) for name in attacks}


def model_metrics(model: nn.Module, dataset: Dataset, sets: AuditSets, scores: dict[str, Scores],
                  low_fprs: list[float]) -> dict[str, float]:
    metrics = {}
    for part, ids in (("forget", sets.forget), ("retain", sets.retain_all), ("test", sets.test)):
        metrics[f"{part}_accuracy"] = accuracy(predict_logits(model, dataset.inputs[ids]), dataset.labels[ids])
    for attack, parts in scores.items():
        for key, value in membership_metrics(parts["forget"], parts["audit_holdout"], low_fprs).items():
            metrics[f"{attack}_{key}"] = value
    if "mia_efficacy" in scores:
        # SalUn's number: the share of forget samples the classifier calls non-members.
        metrics["mia_efficacy"] = float((scores["mia_efficacy"]["forget"] < MIA_EFFICACY_THRESHOLD).mean())
    return metrics


def add_run_facts(per_model: dict[str, dict[str, float]], seconds: dict[str, float],
                  quality: dict[str, float], ulira: dict[str, dict[str, Any]]) -> None:
    """Add each method's seconds (and ratio to retrain's), forgetting quality and U-LiRA's AUCs (against
    the retrained model, and of its held-out test: stage ulira) to its metrics.

    The retrain column gets retrain-vs-retrain quality: the best the estimator can give.
    """
    for method, value in seconds.items():
        per_model[method] |= {"seconds": value, "seconds_ratio_to_retrain": value / seconds[REFERENCE]}
    for name, metrics in per_model.items():
        key = "retrain_vs_retrain" if name == REFERENCE else name
        if f"{key}/forgetting_quality" in quality:
            metrics["forgetting_quality"] = quality[f"{key}/forgetting_quality"]
    for method, result in ulira.items():
        per_model[method] |= {"ulira_auc": result["model"]["auc"], "ulira_held_out_auc": result["held_out"]["auc"]}


def flatten_audit(per_model: dict[str, dict[str, float]], checks: dict[str, list[dict[str, Any]]]) -> dict:
    """The flat `<model>/<metric>` dict written to metrics/audit.json and logged to MLflow."""
    flat = {f"{model}/{key}": value for model, metrics in per_model.items() for key, value in metrics.items()}
    return flat | {f"goals/{m}_passed": float(all(r["passed"] for r in rows)) for m, rows in checks.items()}


def gap_metrics(attacks: list[str], low_fprs: list[float]) -> list[str]:
    tpr = f"tpr_at_{fpr_label(low_fprs[0])}_fpr"
    return ["forget_accuracy", "retain_accuracy", "test_accuracy",
            *(f"{a}_{m}" for a in attacks for m in ("auc", tpr))]


def gaps_to_reference(per_model: dict[str, dict[str, float]], metrics: list[str]) -> dict[str, dict[str, float]]:
    """|metric - retrain's metric| for each gap metric, and their mean (smaller = closer to retrain)."""
    reference = per_model[REFERENCE]
    gaps = {}
    for name, values in per_model.items():
        model_gaps = {f"gap_{m}": abs(values[m] - reference[m]) for m in metrics}
        model_gaps["average_gap"] = float(np.mean(list(model_gaps.values())))
        gaps[name] = model_gaps
    return gaps
