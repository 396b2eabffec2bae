"""The audit's outputs for people: Markdown and self-contained HTML reports, plots, CSVs."""

import base64
import html
import io
from typing import Any

import numpy as np

from remi.attacks.audit_attacks import Scores
from remi.attacks.roc import fpr_label, roc_points

ModelScores = dict[str, dict[str, Scores]]  # model -> attack -> part -> scores
# Common FPR grid (log-spaced: the low-FPR region is where attacks matter) for the CSVs.
FPR_GRID = np.r_[0.0, np.logspace(-3, 0, 61)]


def table_rows(attacks: list[str], low_fprs: list[float]) -> list[tuple[str, str]]:
    rows = [("forget_accuracy", "forget accuracy"), ("retain_accuracy", "retain accuracy"),
            ("test_accuracy", "test accuracy")]
    for attack in attacks:
        rows.append((f"{attack}_auc", f"{attack} AUC"))
        rows += [(f"{attack}_tpr_at_{fpr_label(f)}_fpr", f"{attack} TPR @ {f:g} FPR") for f in low_fprs]
    if "mia_efficacy" in attacks:
        rows.append(("mia_efficacy", "MIA-efficacy (share of forget called non-member)"))
    return [*rows, ("ulira_auc", "U-LiRA AUC against retrain (0.5: no trace)"),
            ("ulira_held_out_auc", "U-LiRA AUC, held-out references (the attack's power)"),
            ("forgetting_quality", "forgetting quality (per-example; retrain = retrain vs retrain)"),
            ("average_gap", "average gap to retrain"), ("seconds", "seconds"),
            ("seconds_ratio_to_retrain", "seconds / retrain seconds")]


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _gated(row: dict[str, Any]) -> str:
    return "yes" if row["gated"] else "no (reported)"


def _verdict(row: dict[str, Any]) -> str:
    return "pass" if row["passed"] else f"MISS by {-row['margin']:.4f}"


def markdown(per_model: dict[str, dict[str, float]], rows: list[tuple[str, str]],
             checks: dict[str, list[dict[str, Any]]], context: dict[str, str]) -> str:
    models = list(per_model)
    lines = ["# Unlearning audit", "", *(f"- {key}: {value}" for key, value in context.items()), "",
             "Membership attacks: members = forget set, non-members = audit_holdout. "
             "Gaps are absolute differences to the retrained model.", "",
             "| metric | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    lines += [f"| {label} | " + " | ".join(_cell(per_model[m].get(key)) for m in models) + " |"
              for key, label in rows]
    for method, method_checks in checks.items():
        lines += ["", f"## Acceptance for {method}", "", "| limit | value | bound | result | gated |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['check']} | {r['value']:.4f} | {r['limit']:.4f} | {_verdict(r)} | {_gated(r)} |"
                  for r in method_checks]
    return "\n".join(lines) + "\n"


def roc_tables(scores: ModelScores, attacks: list[str]) -> dict[str, str]:
    """attack -> CSV text with columns fpr, <model>... (TPR on a shared FPR grid)."""
    tables = {}
    for attack in attacks:
        columns = {"fpr": FPR_GRID}
        for model, per_attack in scores.items():
            fpr, tpr = roc_points(per_attack[attack]["forget"], per_attack[attack]["audit_holdout"], 10_000)
            columns[model] = np.interp(FPR_GRID, fpr, tpr)
        rows = [",".join(f"{columns[c][i]:.6f}" for c in columns) for i in range(len(FPR_GRID))]
        tables[attack] = ",".join(columns) + "\n" + "\n".join(rows) + "\n"
    return tables


SCORE_COLUMNS = ("model", "attack", "part", "sample_id", "score")


def scores_csv(scores: ModelScores, ids: dict[str, np.ndarray]) -> str:
    """Per-example scores, one row per model, attack, part and sample (SCORE_COLUMNS)."""
    lines = [",".join(SCORE_COLUMNS)]
    for model, per_attack in scores.items():
        for attack, parts in per_attack.items():
            for part, values in parts.items():
                lines += [f"{model},{attack},{part},{i},{v:.6g}" for i, v in zip(ids[part], values, strict=True)]
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def roc_figure(scores: ModelScores, attacks: list[str]) -> bytes:
    """Log-log ROC of every attack, one curve per model; PNG bytes."""
    plt = _pyplot()
    columns = min(3, len(attacks))
    rows = -(-len(attacks) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 4.2 * rows), squeeze=False)
    for axis, attack in zip(axes.flat, attacks, strict=False):
        for model, per_attack in scores.items():
            fpr, tpr = roc_points(per_attack[attack]["forget"], per_attack[attack]["audit_holdout"], 2000)
            axis.plot(np.maximum(fpr, 1e-4), np.maximum(tpr, 1e-4), label=model)
        axis.plot([1e-4, 1], [1e-4, 1], "k:", linewidth=0.8, label="chance")
        axis.set(xscale="log", yscale="log", xlim=(1e-3, 1), ylim=(1e-3, 1), title=attack,
                 xlabel="false-positive rate", ylabel="true-positive rate")
        axis.legend(loc="lower right", fontsize=8)
    for axis in list(axes.flat)[len(attacks):]:
        axis.axis("off")
    figure.suptitle("Membership attacks on forget vs audit_holdout")
    return _png(figure)


def histogram_figure(scores: ModelScores, attack: str) -> bytes:
    """The attack's score distribution on forget, retain and holdout, per model (before/after)."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(scores), figsize=(4.2 * len(scores), 3.4), sharey=True, squeeze=False)
    for axis, (model, per_attack) in zip(axes.flat, scores.items(), strict=True):
        parts = per_attack[attack]
        values = np.concatenate(list(parts.values()))
        low, high = np.percentile(values, [0.5, 99.5])
        bins = np.linspace(low, high, 40)
        for part in ("forget", "retain", "audit_holdout"):
            axis.hist(np.clip(parts[part], bins[0], bins[-1]), bins=bins, density=True, histtype="step",
                      linewidth=1.4, label=part)
        axis.set(title=model, xlabel=f"{attack} score")
        axis.legend(fontsize=8)
    figure.suptitle(f"Membership scores ({attack}): target = before unlearning, others = after")
    return _png(figure)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    _pyplot().close(figure)
    return buffer.getvalue()


def image_tag(png: bytes, alt: str, width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}"{size} src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def sample_png(sample: np.ndarray) -> bytes:
    """One input sample as a small PNG thumbnail: a (1, H, W) or (3, H, W) image as itself (grey or
    colour), a feature vector (F,) as a one-row strip of grey cells; min-max scaled per sample."""
    values = (sample - sample.min()) / (sample.max() - sample.min() + 1e-9)
    if values.ndim == 3:
        values = values[0] if values.shape[0] == 1 else values.transpose(1, 2, 0)
    elif values.ndim == 1:
        values = values[None, :]
    plt = _pyplot()
    buffer = io.BytesIO()
    plt.imsave(buffer, values, cmap="gray", format="png")  # the colour map is ignored for RGB
    return buffer.getvalue()


def html_report(title: str, sections: list[tuple[str, str]]) -> str:
    """A self-contained page: every image is embedded, nothing is fetched."""
    body = "\n".join(f"<section><h2>{html.escape(h)}</h2>\n{content}</section>" for h, content in sections)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #bbb; padding: 3px 8px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.miss {{ color: #b00; font-weight: bold; }} .pass {{ color: #070; }}
img {{ max-width: 100%; }}
</style></head>
<body><h1>{html.escape(title)}</h1>
{body}
</body></html>
"""


def html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
