"""Comparison tables of the unlearning methods in SalUn's shape (and our extra columns).

    remi compare [metrics/audit.json]       # one run: print a Markdown table
    remi compare --seeds metrics/seeds/*.json [--report reports/comparison.md] [--metrics metrics/comparison.json]
                                            # several seeds per dataset (`remi seeds`): mean +- std
"""

import json
import statistics
from pathlib import Path

from remi.errors import UserError
from remi.runtime.files import read_json_output

COLUMNS = (("forget_accuracy", "forget acc"), ("retain_accuracy", "retain acc"), ("test_accuracy", "test acc"),
           ("mia_efficacy", "MIA-efficacy"), ("shadow_attack_auc", "shadow AUC"),
           ("shadow_attack_tpr_at_1pct_fpr", "shadow TPR@1%"), ("lira_fixed_variance_auc", "LiRA-fv AUC"),
           ("rmia_auc", "RMIA AUC"), ("ulira_auc", "U-LiRA AUC"), ("forgetting_quality", "forgetting quality"),
           ("average_gap", "avg gap"),
           ("seconds", "seconds"), ("seconds_ratio_to_retrain", "s / retrain s"))
FAST = 0.10  # "fast" methods take at most this share of retraining's time


def models_in(metrics: dict[str, float]) -> list[str]:
    """target, retrain, then the other methods alphabetically."""
    models = {key.split("/")[0] for key in metrics if key.count("/") == 1}
    return sorted((m for m in models if f"{m}/test_accuracy" in metrics),
                  key=lambda m: (m != "target", m != "retrain", m))


def markdown_table(rows: dict[str, list[str]]) -> str:
    lines = ["| model | " + " | ".join(label for _, label in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    lines += [f"| {model} | " + " | ".join(cells) + " |" for model, cells in rows.items()]
    return "\n".join(lines)


def single_run_table(metrics: dict[str, float]) -> str:
    return markdown_table({m: [f"{metrics[f'{m}/{key}']:.3f}" if f"{m}/{key}" in metrics else ""
                               for key, _ in COLUMNS] for m in models_in(metrics)})


def mean_std(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value) and count."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def aggregate(runs: dict[str, dict[str, float]]) -> dict[str, dict[str, dict[str, float]]]:
    """model -> column -> {mean, std, n} over the seeds."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for model in models_in(next(iter(runs.values()))):
        for key, _ in COLUMNS:
            values = [run[f"{model}/{key}"] for run in runs.values() if f"{model}/{key}" in run]
            if values:
                summary.setdefault(model, {})[key] = mean_std(values)
    return summary


def fastest_verdict(summary: dict[str, dict[str, dict[str, float]]]) -> str:
    """Is ReMI's average gap the smallest among the methods taking <= FAST of retraining's time?"""
    fast = {m: s["average_gap"]["mean"] for m, s in summary.items()
            if m not in ("target", "retrain") and "average_gap" in s
            and s["seconds_ratio_to_retrain"]["mean"] <= FAST}
    if "remi" not in summary:
        return "ReMI was not run."
    if "remi" not in fast:
        ratio = summary["remi"]["seconds_ratio_to_retrain"]["mean"]
        return (f"ReMI took {ratio:.3f} of retraining's time on average: more than {FAST:.0%}, so it is not "
                "in the fast group.")
    ranked = sorted(fast, key=fast.__getitem__)
    others = ", ".join(f"{m} {fast[m]:.3f}" for m in ranked if m != "remi")
    if ranked[0] == "remi":
        return (f"Among the methods taking at most {FAST:.0%} of retraining's time, ReMI has the smallest mean "
                f"average gap to retrain: {fast['remi']:.3f} (others: {others or 'none'}).")
    best = ranked[0]
    return (f"Among the methods taking at most {FAST:.0%} of retraining's time, ReMI's mean average gap "
            f"({fast['remi']:.3f}) is NOT the smallest: {best} has {fast[best]:.3f}, "
            f"{fast['remi'] - fast[best]:.3f} less (all: {others}).")


def seeds_report(files: list[Path]) -> tuple[str, dict]:
    sections, numbers = ["# Unlearning methods side by side, over seeds",
                         "",
                         "Built by `remi compare --seeds metrics/seeds/*.json` from the runs of "
                         "`remi seeds` (one `dvc exp run` per seed, looped). Cells: mean ± sample std over the "
                         "seeds. Gaps and seconds ratios are to retraining in the same run. avg gap: mean absolute "
                         "gap to retrain over forget/retain/test accuracy and every attack's AUC and TPR at 1% "
                         "FPR (metrics/audit.json)."], {}
    for path in files:
        record = read_json_output(path, "`remi seeds`")
        summary = aggregate(record["runs"])
        numbers[record["dataset"]] = {"model": record["model"], "hardware": record["hardware"],
                                      "seeds": sorted(record["runs"], key=int), "methods": summary}
        rows = {m: [f"{s[key]['mean']:.3f} ± {s[key]['std']:.3f}" if key in s else "" for key, _ in COLUMNS]
                for m, s in summary.items()}
        sections += ["", f"## {record['dataset']} ({record['model']})", "",
                     f"- seeds: {', '.join(sorted(record['runs'], key=int))} ({record['seed_keys']})",
                     f"- hardware: {record['hardware']}; code: git commit {record.get('git_commit', 'not recorded')}",
                     f"- {fastest_verdict(summary)}", "", markdown_table(rows), "",
                     "<details><summary>data, splits, model, train params</summary>", "", "```yaml",
                     record["profile"].rstrip(), "```", "", "</details>"]
    return "\n".join(sections) + "\n", numbers


def compare(audit: Path, seeds: list[Path] | None, report: Path, metrics: Path) -> None:
    """Print one run's table, or write (and print) the mean +- std report over seed files."""
    try:
        if not seeds:
            print(single_run_table(read_json_output(audit, "`remi run`")))
            return
        text, numbers = seeds_report(seeds)
    except (KeyError, TypeError, AttributeError) as error:  # JSON, but not what the pipeline writes
        raise UserError(f"{seeds or audit}: not what `remi run` (metrics/audit.json) or `remi seeds` "
                        f"(metrics/seeds/*.json) writes ({type(error).__name__}: {str(error)[:100]}).") from error
    report.write_text(text)
    metrics.write_text(json.dumps(numbers, indent=2, sort_keys=True) + "\n")
    print(text)
