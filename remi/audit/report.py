"""Assemble the audit's report files from its metrics and per-example scores."""

import html
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from remi.audit.rendering import (
    ModelScores,
    histogram_figure,
    html_report,
    html_table,
    image_tag,
    markdown,
    roc_figure,
    roc_tables,
    sample_png,
    scores_csv,
    table_rows,
)
from remi.audit.scoring import REFERENCE, AuditSets
from remi.data.datasets import Dataset
from remi.networks.training import predict_logits
from remi.runtime.files import replace_dir, write_bytes

EXPOSED_SAMPLES = 12


@dataclass
class AuditEvidence:
    per_model: dict[str, dict[str, float]]
    checks: dict[str, list[dict[str, Any]]]
    scores: ModelScores
    models: dict[str, nn.Module]
    attacks: list[str]
    low_fprs: list[float]
    context: dict[str, str]


def write_reports(report_dir: Path, scores_csv_path: Path, evidence: AuditEvidence, dataset: Dataset,
                  sets: AuditSets, forget_images: bool = True) -> None:
    """`report_dir` as one set (audit.md, audit.html (self-contained), roc.png, histograms.png,
    roc_<attack>.csv), swapped in whole; and the per-example scores CSV beside it. `forget_images`: whether
    the most exposed forget samples are shown as images or by ID only."""
    started = time.perf_counter()
    ids = {p: getattr(sets, p).numpy() for p in ("forget", "retain", "audit_holdout")}
    write_bytes(scores_csv_path, scores_csv(evidence.scores, ids).encode())
    rows = table_rows(evidence.attacks, evidence.low_fprs)
    roc_png = roc_figure(evidence.scores, evidence.attacks)
    histogram_png = histogram_figure(evidence.scores, _histogram_attack(evidence.attacks))
    files = {"audit.md": markdown(evidence.per_model, rows, evidence.checks, evidence.context).encode(),
             "roc.png": roc_png, "histograms.png": histogram_png,
             "audit.html": _html(evidence, rows, roc_png, histogram_png, dataset, sets, forget_images).encode()}
    files |= {f"roc_{attack}.csv": table.encode()
              for attack, table in roc_tables(evidence.scores, evidence.attacks).items()}

    def fill(directory: Path) -> None:
        for name, data in files.items():
            (directory / name).write_bytes(data)

    replace_dir(report_dir, fill)
    print(f"Reports written to {report_dir} in {time.perf_counter() - started:.1f} s")


def _histogram_attack(attacks: list[str]) -> str:
    return "lira_fixed_variance" if "lira_fixed_variance" in attacks else attacks[0]


def _html(evidence: AuditEvidence, rows: list[tuple[str, str]], roc_png: bytes, histogram_png: bytes,
          dataset: Dataset, sets: AuditSets, forget_images: bool) -> str:
    models = list(evidence.per_model)
    metric_rows = [[html.escape(label)] + [_number(evidence.per_model[m].get(key)) for m in models]
                   for key, label in rows]
    goal_rows = [[html.escape(r["check"]), _number(r["value"]), _number(r["limit"]),
                  '<span class="pass">pass</span>' if r["passed"] else
                  f'<span class="miss">MISS by {-r["margin"]:.4f}</span>', "yes" if r["gated"] else "no (reported)"]
                 for method_checks in evidence.checks.values() for r in method_checks]
    sections = [
        ("Context", html_table(["item", "value"], [[html.escape(k), html.escape(v)]
                                                   for k, v in evidence.context.items()])),
        ("Metrics (members = forget, non-members = audit_holdout)",
         html_table(["metric", *models], metric_rows)),
        ("Acceptance (params.yaml acceptance)", html_table(["limit", "value", "bound", "result", "gated"], goal_rows)),
        ("ROC curves (log-log)", image_tag(roc_png, "ROC curves of every attack")),
        ("Membership-score histograms",
         image_tag(histogram_png, "score histograms")),
        ("Per-class accuracy (test / forget)", _per_class(evidence.models, dataset, sets)),
        ("Most exposed forget samples",
         _exposed(evidence, dataset, sets, _histogram_attack(evidence.attacks), forget_images)),
    ]
    return html_report("Unlearning audit", sections)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _per_class(models: dict[str, nn.Module], dataset: Dataset, sets: AuditSets) -> str:
    header = ["class"] + [f"{m} test / forget" for m in models]
    rows = []
    for label in range(dataset.num_classes):
        cells = [str(label)]
        for model in models.values():
            parts = []
            for ids in (sets.test, sets.forget):
                chosen = ids[dataset.labels[ids] == label]
                correct = predict_logits(model, dataset.inputs[chosen]).argmax(1) == label
                parts.append(f"{correct.float().mean().item():.3f}" if len(chosen) else "-")
            cells.append(" / ".join(parts))
        rows.append(cells)
    return html_table(header, rows)


def _exposed(evidence: AuditEvidence, dataset: Dataset, sets: AuditSets, attack: str, images: bool) -> str:
    """The forget samples the attack still finds most member-like after unlearning; with `images`, as
    thumbnails too."""
    methods = [m for m in evidence.per_model if m not in ("target", REFERENCE)] or [REFERENCE]
    method = methods[0]
    order = np.argsort(-evidence.scores[method][attack]["forget"])[:EXPOSED_SAMPLES]
    header = (["sample"] if images else []) + ["sample ID", "label"] + [f"{attack} score: {m}" for m in evidence.scores]
    rows = []
    for index in order:
        sample = int(sets.forget[index])
        thumbnail = ([image_tag(sample_png(dataset.inputs[sample].numpy()), f"sample {sample}", width=42)]
                     if images else [])
        rows.append(thumbnail + [str(sample), str(int(dataset.labels[sample]))]
                    + [f"{evidence.scores[m][attack]['forget'][index]:.3f}" for m in evidence.scores])
    note = (f"<p>Ranked by the {html.escape(attack)} score under <b>{html.escape(method)}</b>; "
            "higher = more member-like. Scores of the same samples under the other models beside.</p>")
    if not images:
        note += ("<p>By ID only: these samples are erasure requests' subjects, and this report is kept in git, "
                 "where a copy of their content would outlive the erasure.</p>")
    return note + html_table(header, rows)

