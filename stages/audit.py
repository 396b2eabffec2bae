"""Stage audit: every model on the same splits and attacks; gaps to retraining; reports and plots."""

import time
from datetime import UTC, datetime
from typing import Any

from remi.audit.acceptance import ORIGINAL_TEST_ACCURACY, acceptance_checks
from remi.audit.inputs import load_attack_inputs, load_audit_sets
from remi.audit.report import AuditEvidence, write_reports
from remi.audit.scoring import (
    REFERENCE,
    AuditSets,
    add_run_facts,
    flatten_audit,
    gap_metrics,
    gaps_to_reference,
    model_metrics,
    score_model,
)
from remi.data.datasets import load_dataset
from remi.networks.checkpoints import load_model
from remi.params_schema import Params
from remi.pipeline import tracking
from remi.pipeline.entry_point import stage_main
from remi.pipeline.layout import (
    AUDIT_REPORT_DIR,
    MEMBERSHIP_SCORES,
    metrics_path,
    run_record_path,
    split_path,
    unlearn_metrics_path,
    unlearned_dir,
)
from remi.pipeline.params import load_params
from remi.pipeline.starting_model import StartingModel, read_starting_model
from remi.pipeline.starting_weights import load_starting_model
from remi.runtime.device import compute_device
from remi.runtime.files import read_json, write_json


def main() -> None:
    params = load_params()
    audit = params.audit
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    sets = load_audit_sets(audit)
    methods = params.unlearn.methods
    # "target" is the model before unlearning: the original target, or with sequential unlearning the
    # release this cycle started from (remi/pipeline/starting_model.py).
    start = read_starting_model()
    upstream = ["prepare", "attack", "shadows", "online_shadows", "target", *(f"unlearn/{m}" for m in methods)]
    with tracking.stage_run("audit", "audit", {"audit": audit, "acceptance": params.acceptance}, upstream) as run:
        started = time.perf_counter()
        device = compute_device()
        inputs = load_attack_inputs(params, dataset, sets, device)
        models = {"target": load_starting_model(start, device)} | {m: load_model(unlearned_dir(m), device)
                                                                   for m in methods}
        scores = {name: score_model(model, dataset, sets, inputs, audit.attacks)
                  for name, model in models.items()}
        per_model = {name: model_metrics(model, dataset, sets, scores[name], audit.low_fprs)
                     for name, model in models.items()}
        timings = {m: read_json(unlearn_metrics_path(m)) | read_json(run_record_path(f"unlearn/{m}"))
                   for m in methods}
        quality = read_json(metrics_path("forgetting_quality"))
        ulira = read_json(metrics_path("ulira"))["methods"]
        add_run_facts(per_model, {m: t["unlearn_seconds"] for m, t in timings.items()}, quality, ulira)
        for name, gaps in gaps_to_reference(per_model, gap_metrics(audit.attacks, audit.low_fprs)).items():
            per_model[name] |= gaps
        if start.original_test_accuracy is not None:
            per_model["target"][ORIGINAL_TEST_ACCURACY] = start.original_test_accuracy
        checks = {m: acceptance_checks(per_model, params.acceptance, m) for m in methods if m != REFERENCE}
        flat = flatten_audit(per_model, checks)
        context = _context(params, start, sets, timings, run) | {
            "forgetting quality": f"{quality['models_per_population']} models per population (largest "
                                  f"epsilon they can certify: {quality['largest_certifiable_epsilon']:.2f}), "
                                  f"{quality['stage_seconds']:.0f} s (stage forgetting_quality)",
            "audit run time (scoring, before reports)": f"{time.perf_counter() - started:.1f} s"}
        evidence = AuditEvidence(per_model, checks, scores, models, audit.attacks, audit.low_fprs, context)
        # A forget set of erasure requests is shown by ID only: the report must not keep a copy of what was erased.
        write_reports(AUDIT_REPORT_DIR, MEMBERSHIP_SCORES, evidence, dataset, sets,
                      forget_images=not read_json(split_path("forget")).get("requests"))
        flat["audit/seconds"] = time.perf_counter() - started
        write_json(metrics_path("audit"), flat)
        tracking.log_metrics(flat)
        tracking.log_artifacts(AUDIT_REPORT_DIR, "reports")
        _log_evaluations(params, per_model, run.info.run_id)


def _log_evaluations(params: Params, per_model: dict[str, dict[str, float]], audit_run_id: str) -> None:
    """One child run per audited model with the same metric names (forget_accuracy, shadow_attack_auc,
    gap_..., seconds), so MLflow's Compare lines methods up across seeds and pipeline runs."""
    for name, metrics in per_model.items():
        section = {name: params.method(name)} if name in params.unlearn.methods else {}
        with tracking.stage_run("evaluation", name, {"method": name, **section}, parent_run_id=audit_run_id):
            tracking.log_metrics(metrics)


def _context(params, start: StartingModel, sets: AuditSets, timings: dict, run) -> dict[str, str]:
    run_ids = {t["pipeline_run_id"] for t in timings.values()}
    same_run = len(run_ids) == 1 and "none" not in run_ids
    return {
        "dataset": params.data.dataset, "forget samples": str(len(sets.forget)),
        "methods other than retrain started from (the 'target' rows)": start.describe(),
        "erasure requests in the forget set": _requests_waiting(read_json(split_path("forget"))),
        "audit_holdout samples": str(len(sets.audit_holdout)),
        "reference (shadow) models": str(params.shadows.count),
        "low FPRs": ", ".join(f"{f:g}" for f in params.audit.low_fprs),
        "timing devices": ", ".join(sorted({t["device"] for t in timings.values()})),
        "all methods timed in the same pipeline run":
            "yes" if same_run else "NO: run `dvc repro -s -f unlearn` then `dvc repro` to compare seconds",
        "MLflow run": run.info.run_id, **tracking.code_identity(),
    }


def _requests_waiting(forget: dict[str, Any]) -> str:
    """How many requests the audited models answer, and how long the oldest has waited so far: the
    audit runs just before the release, so this is the erasure latency up to the gate."""
    requests, received = forget.get("requests", []), forget.get("received_times", {})
    if not received:
        return str(len(requests))
    times = sorted(datetime.fromisoformat(t) for t in received.values())
    waited = (datetime.now(UTC) - times[0]).total_seconds() / 86400
    timed = "" if len(received) == len(requests) else f" ({len(received)} with a received time)"
    return (f"{len(requests)}{timed}, received {times[0]:%Y-%m-%d %H:%M} to {times[-1]:%Y-%m-%d %H:%M} UTC; "
            f"the oldest has waited {waited:.2f} days at this audit (received-to-released latency per "
            "request: `remi request status`)")


if __name__ == "__main__":
    stage_main(main)
