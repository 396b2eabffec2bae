"""The audit: accuracy and membership-inference metrics per model, gaps to retraining, goal checks."""

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from remi.attacks import AttackModel, attack_scores, loss_scores
from remi.datasets import Dataset
from remi.metrics import membership_metrics
from remi.training import accuracy, predict_logits

ATTACKS = ("shadow_attack", "loss_attack")
REFERENCE = "retrain"


@dataclass
class AuditSets:
    """Sample IDs the audit scores every model on. Members: forget; non-members: audit_holdout."""

    forget: torch.Tensor
    retain: torch.Tensor
    test: torch.Tensor
    audit_holdout: torch.Tensor


def score_model(model: nn.Module, dataset: Dataset, sets: AuditSets, attack: AttackModel,
                ) -> dict[str, dict[str, np.ndarray]]:
    """Per-example membership scores (higher = member) on forget and audit_holdout, per attack."""
    scores: dict[str, dict[str, np.ndarray]] = {name: {} for name in ATTACKS}
    for part in ("forget", "audit_holdout"):
        ids = getattr(sets, part)
        logits, labels = predict_logits(model, dataset.inputs[ids]), dataset.labels[ids]
        scores["shadow_attack"][part] = attack_scores(attack, logits, labels)
        scores["loss_attack"][part] = loss_scores(logits, labels)
    return scores


def model_metrics(model: nn.Module, dataset: Dataset, sets: AuditSets,
                  scores: dict[str, dict[str, np.ndarray]], low_fpr: float) -> dict[str, float]:
    metrics = {}
    for part in ("forget", "retain", "test"):
        ids = getattr(sets, part)
        logits = predict_logits(model, dataset.inputs[ids])
        metrics[f"{part}_accuracy"] = accuracy(logits, dataset.labels[ids])
    for attack, parts in scores.items():
        for key, value in membership_metrics(parts["forget"], parts["audit_holdout"], low_fpr).items():
            metrics[f"{attack}_{key}"] = value
    return metrics


GAP_METRICS = ("forget_accuracy", "retain_accuracy", "test_accuracy",
               *(f"{a}_{m}" for a in ATTACKS for m in ("auc", "tpr_at_low_fpr")))


def gaps_to_reference(per_model: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """|metric - retrain's metric| for each gap metric, and their mean (smaller = closer to retrain)."""
    reference = per_model[REFERENCE]
    gaps = {}
    for name, metrics in per_model.items():
        model_gaps = {f"gap_{m}": abs(metrics[m] - reference[m]) for m in GAP_METRICS}
        model_gaps["average_gap"] = float(np.mean(list(model_gaps.values())))
        gaps[name] = model_gaps
    return gaps


def goal_checks(per_model: dict[str, dict[str, float]], goals: dict[str, float],
                method: str) -> list[dict[str, Any]]:
    """The acceptance goals for `method` (see params.yaml audit.goals): value, limit, pass/miss."""
    target, retrain, unlearned = per_model["target"], per_model[REFERENCE], per_model[method]
    rows = [("target shadow-attack AUC (forget vs holdout) >=", target["shadow_attack_auc"],
             goals["min_target_attack_auc"], ">=")]
    for attack in ATTACKS:
        rows.append((f"abs({attack} AUC of {method} - retrain's) <=",
                     abs(unlearned[f"{attack}_auc"] - retrain[f"{attack}_auc"]),
                     goals["max_auc_gap"], "<="))
    rows += [
        (f"abs(forget accuracy of {method} - retrain's) <=",
         abs(unlearned["forget_accuracy"] - retrain["forget_accuracy"]),
         goals["max_forget_accuracy_gap"], "<="),
        (f"test accuracy drop of {method} from target <=",
         target["test_accuracy"] - unlearned["test_accuracy"], goals["max_test_accuracy_drop"], "<="),
        (f"seconds({method}) / seconds(retrain) <=",
         unlearned["seconds"] / retrain["seconds"], goals["max_seconds_ratio"], "<="),
    ]
    return [{"check": check, "value": value, "limit": limit,
             "passed": bool(value >= limit if sense == ">=" else value <= limit),
             "margin": (value - limit) if sense == ">=" else (limit - value)}
            for check, value, limit, sense in rows]
