"""Stage audit: every model on the same splits and attacks; gaps to retraining; report and plots."""

from remi import tracking
from remi.artifacts import load_attack, load_model
from remi.audit import REFERENCE, AuditSets, gaps_to_reference, goal_checks, model_metrics, score_model
from remi.datasets import load_dataset
from remi.io import atomic_write, read_json, write_json
from remi.layout import (
    ATTACK_DIR,
    REPORTS_DIR,
    SPLITS_DIR,
    TARGET_DIR,
    metrics_path,
    split_path,
    unlearned_dir,
)
from remi.params import load_params
from remi.report import markdown, plot_roc, roc_tables, scores_csv
from remi.splits import load_split, retain_ids
from remi.stage_main import stage_main


def main() -> None:
    params = load_params()
    dataset = load_dataset(params["data"]["dataset"], params["data"]["raw_dir"])
    target_train, forget = load_split(split_path("target_train")), load_split(split_path("forget"))
    sets = AuditSets(forget=forget, retain=retain_ids(target_train, forget),
                     test=load_split(split_path("test")),
                     audit_holdout=load_split(split_path("audit_holdout")))
    methods = params["unlearn"]["methods"]
    model_dirs = {"target": TARGET_DIR} | {m: unlearned_dir(m) for m in methods}
    upstream = {"prepare": SPLITS_DIR, "attack": ATTACK_DIR} | {k: v for k, v in model_dirs.items()}
    with tracking.stage_run("audit", "audit", {"audit": params["audit"]}, upstream) as run:
        attack = load_attack(ATTACK_DIR)
        scores, per_model = {}, {}
        for name, directory in model_dirs.items():
            model = load_model(directory)
            scores[name] = score_model(model, dataset, sets, attack)
            per_model[name] = model_metrics(model, dataset, sets, scores[name], params["audit"]["low_fpr"])
        for method in methods:
            per_model[method]["seconds"] = read_json(unlearned_dir(method) / "timing.json")["unlearn_seconds"]
            per_model[method]["seconds_ratio_to_retrain"] = (
                per_model[method]["seconds"] / per_model[REFERENCE]["seconds"])
        for name, gaps in gaps_to_reference(per_model).items():
            per_model[name] |= gaps
        checks = {m: goal_checks(per_model, params["audit"]["goals"], m) for m in methods if m != REFERENCE}
        flat = {f"{model}/{key}": value
                for model, metrics in per_model.items() for key, value in metrics.items()}
        flat |= {f"goals/{m}_passed": float(all(r["passed"] for r in rows)) for m, rows in checks.items()}
        _write_reports(per_model, checks, scores, sets, run, params)
        write_json(metrics_path("audit"), flat)
        tracking.log_metrics(flat)
        tracking.log_artifacts(REPORTS_DIR, "reports")


def _write_reports(per_model, checks, scores, sets, run, params) -> None:
    timings = [read_json(unlearned_dir(m) / "timing.json") for m in params["unlearn"]["methods"]]
    same_run = len({t["pipeline_run_id"] for t in timings}) == 1 and timings[0]["pipeline_run_id"] != "none"
    context = {"dataset": params["data"]["dataset"], "forget samples": str(len(sets.forget)),
               "audit_holdout samples": str(len(sets.audit_holdout)),
               "low FPR": str(params["audit"]["low_fpr"]),
               "timing devices": ", ".join(sorted({t["device"] for t in timings})),
               "all methods timed in the same pipeline run": "yes" if same_run else
               "NO: run `dvc repro -s -f unlearn` then `dvc repro` to compare seconds",
               "MLflow run": run.info.run_id, **tracking.code_identity()}
    REPORTS_DIR.mkdir(exist_ok=True)
    text = markdown(per_model, checks, context)
    atomic_write(REPORTS_DIR / "audit.md", lambda tmp: tmp.write_text(text))
    for attack, table in roc_tables(scores).items():
        atomic_write(REPORTS_DIR / f"roc_{attack}.csv", lambda tmp, t=table: tmp.write_text(t))
    ids = {"forget": sets.forget.numpy(), "audit_holdout": sets.audit_holdout.numpy()}
    csv = scores_csv(scores, ids)
    atomic_write(REPORTS_DIR / "membership_scores.csv", lambda tmp: tmp.write_text(csv))
    plot_roc(scores, REPORTS_DIR / "roc.png")


if __name__ == "__main__":
    stage_main(main)
