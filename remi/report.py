"""The audit's human-readable outputs: Markdown table, ROC image, ROC CSVs for `dvc plots`."""

from pathlib import Path
from typing import Any

import numpy as np

from remi.audit import ATTACKS
from remi.io import atomic_write
from remi.metrics import roc_points

TABLE_ROWS = (
    ("forget_accuracy", "forget accuracy"), ("retain_accuracy", "retain accuracy"),
    ("test_accuracy", "test accuracy"), ("shadow_attack_auc", "shadow-attack AUC"),
    ("shadow_attack_tpr_at_low_fpr", "shadow-attack TPR @ low FPR"),
    ("loss_attack_auc", "loss-attack AUC"), ("loss_attack_tpr_at_low_fpr", "loss-attack TPR @ low FPR"),
    ("average_gap", "average gap to retrain"), ("seconds", "seconds"),
    ("seconds_ratio_to_retrain", "seconds / retrain seconds"),
)
# Common FPR grid (log-spaced: the low-FPR region is where attacks matter) for the CSVs.
FPR_GRID = np.r_[0.0, np.logspace(-3, 0, 61)]


def markdown(per_model: dict[str, dict[str, float]], checks: dict[str, list[dict[str, Any]]],
             context: dict[str, str]) -> str:
    models = list(per_model)
    lines = ["# Unlearning audit", "",
             *(f"- {key}: {value}" for key, value in context.items()), "",
             "Membership attacks: members = forget set, non-members = audit_holdout. "
             "Gaps are absolute differences to the retrained model.", "",
             "| metric | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for key, label in TABLE_ROWS:
        cells = [_cell(per_model[m].get(key)) for m in models]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for method, rows in checks.items():
        lines += ["", f"## Goals for {method}", "", "| goal | value | limit | result |", "|---|---|---|---|"]
        lines += [f"| {r['check']} | {r['value']:.4f} | {r['limit']:.4f} | {_verdict(r)} |" for r in rows]
    return "\n".join(lines) + "\n"


def _verdict(check: dict[str, Any]) -> str:
    return "pass" if check["passed"] else f"MISS by {-check['margin']:.4f}"


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def roc_tables(scores: dict[str, dict[str, dict[str, np.ndarray]]]) -> dict[str, str]:
    """attack -> CSV text with columns fpr, <model>... (TPR on a shared FPR grid)."""
    tables = {}
    for attack in ATTACKS:
        columns = {"fpr": FPR_GRID}
        for model, per_attack in scores.items():
            fpr, tpr = roc_points(per_attack[attack]["forget"], per_attack[attack]["audit_holdout"], 10_000)
            columns[model] = np.interp(FPR_GRID, fpr, tpr)
        header = ",".join(columns)
        rows = [",".join(f"{columns[c][i]:.6f}" for c in columns) for i in range(len(FPR_GRID))]
        tables[attack] = header + "\n" + "\n".join(rows) + "\n"
    return tables


def scores_csv(scores: dict[str, dict[str, dict[str, np.ndarray]]],
               ids: dict[str, np.ndarray]) -> str:
    """Per-example scores: model, attack, part (forget/audit_holdout), sample_id, score."""
    lines = ["model,attack,part,sample_id,score"]
    for model, per_attack in scores.items():
        for attack, parts in per_attack.items():
            for part, values in parts.items():
                lines += [f"{model},{attack},{part},{i},{v:.6g}"
                          for i, v in zip(ids[part], values, strict=True)]
    return "\n".join(lines) + "\n"


def plot_roc(scores: dict[str, dict[str, dict[str, np.ndarray]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(ATTACKS), figsize=(5 * len(ATTACKS), 4.5))
    for axis, attack in zip(axes, ATTACKS, strict=True):
        for model, per_attack in scores.items():
            fpr, tpr = roc_points(per_attack[attack]["forget"], per_attack[attack]["audit_holdout"], 2000)
            axis.plot(np.maximum(fpr, 1e-4), np.maximum(tpr, 1e-4), label=model)
        axis.plot([1e-4, 1], [1e-4, 1], "k:", linewidth=0.8, label="chance")
        axis.set(xscale="log", yscale="log", xlim=(1e-3, 1), ylim=(1e-3, 1), xlabel="false-positive rate",
                 ylabel="true-positive rate", title=f"{attack}: forget vs audit_holdout")
        axis.legend(loc="lower right")
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))
    plt.close(figure)
