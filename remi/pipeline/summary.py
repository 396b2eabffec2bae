"""The last run's result at a glance (`remi summary`, and the end of `remi run`): the gated method next
to retraining and the original model on the headline numbers, the gate's decision, and where the
report and the MLflow UI are. The README's results table is the same table, in Markdown."""

from pathlib import Path

from remi.catalog import REFERENCE
from remi.errors import UserError
from remi.pipeline.layout import AUDIT_REPORT_DIR, LINEAGE_DIR, metrics_path
from remi.pipeline.params import load_params
from remi.pipeline.tracking import experiment_url
from remi.runtime.files import read_json, read_json_output

Row = tuple[str, dict[str, float | None]]


def headline_rows(audit: dict[str, float], attacks: list[str], models: list[str], seconds: bool = True) -> list[Row]:
    """(label, value per model) for accuracy, every attack's AUC, U-LiRA's, forgetting quality, gap (and seconds).

    The reference's forgetting quality is retraining measured against retraining: the best reachable.
    """
    keys = [("forget_accuracy", "forget accuracy"), ("retain_accuracy", "retain accuracy"),
            ("test_accuracy", "test accuracy"), *((f"{a}_auc", f"{a} AUC") for a in attacks),
            ("ulira_auc", "U-LiRA AUC vs retrain"), ("forgetting_quality", "forgetting quality"),
            ("average_gap", "average gap to retrain"),
            *([("seconds", "seconds")] if seconds else [])]
    return [(label, {m: audit.get(f"{m}/{key}") for m in models}) for key, label in keys]


def _cell(value: float | None, label: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if label == "seconds" else f"{value:.3f}"


def markdown_table(audit: dict[str, float], attacks: list[str], method: str) -> str:
    """Without seconds: they depend on the machine, so they live in BENCHMARKS.md with its name."""
    models = ["target", REFERENCE, method]
    lines = ["| metric (forget vs audit_holdout) | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(_cell(values[m], label) for m in models) + " |"
              for label, values in headline_rows(audit, attacks, models, seconds=False)]
    return "\n".join(lines) + "\n"


def _text_table(audit: dict[str, float], attacks: list[str], method: str) -> list[str]:
    models = ["target", REFERENCE, method]
    lines = [f"  {'':28s}" + "".join(f"{m:>10s}" for m in models)]
    lines += [f"  {label:28s}" + "".join(f"{_cell(values[m], label):>10s}" for m in models)
              for label, values in headline_rows(audit, attacks, models)]
    return lines


def _gate_line(method: str, registered_model: str) -> str:
    gate_file = metrics_path("gate")
    if not gate_file.exists():
        return "Gate: not run yet (`remi run` runs it after the audit)."
    gate = read_json_output(gate_file, "`remi run` (its gate stage)")
    if gate.get("registry_refused"):
        return f"Gate: the registry refused the model; it was left as it was. {gate['registry_refused']}"
    if gate.get("compaction"):
        return (f"Gate: compaction ({gate['compaction']}): {registered_model} version "
                f"{int(gate['registered_version'])}, the model retrained from scratch, is @candidate.")
    if gate.get("passed"):
        return f"Gate: PASSED. {registered_model} version {int(gate['registered_version'])} is @candidate."
    failed = sorted(key.removeprefix("margin/") for key, value in gate.items()
                    if key.startswith("margin/") and value < 0)
    return f"Gate: FAILED for {method} ({', '.join(failed)}); the registry was left as it was."


def _audit_figures() -> dict[str, float]:
    """metrics/audit.json, or a UserError saying to run the pipeline (missing) or re-run it (damaged: a merge left
    conflict markers in it, say; it is tracked by git)."""
    audit_file = metrics_path("audit")
    if not audit_file.exists():
        raise UserError(f"{audit_file} does not exist yet: run `remi run` first.")
    return read_json_output(audit_file, "`remi run` (its audit stage)")


def summary_text() -> str:
    params = load_params()
    audit, method = _audit_figures(), params.gate.method
    target_record = LINEAGE_DIR / "target.json"
    experiment = read_json(target_record)["experiment_id"] if target_record.exists() else "0"
    prepared = read_json(metrics_path("prepare")) if metrics_path("prepare").exists() else {}
    forget = int(prepared.get("forget_count", 0))
    lines = [f"{method} vs retraining on {params.data.dataset} ({params.model.arch})"
             + (f", {forget} forget samples:" if forget else ":"),
             *_text_table(audit, params.audit.attacks, method), "",
             _gate_line(method, params.gate.registered_model),
             f"Report: {Path(AUDIT_REPORT_DIR, 'audit.html').resolve().as_uri()}",
             f"MLflow: `remi ui`, then {experiment_url('http://127.0.0.1:5000', experiment)}"]
    return "\n".join(lines)


def print_summary(markdown: bool = False) -> None:
    if markdown:
        params = load_params()
        print(markdown_table(_audit_figures(), params.audit.attacks, params.gate.method), end="")
    else:
        print(summary_text())
