"""Print the audit's per-method comparison as a Markdown table (SalUn's columns and ours).

    python tools/compare_table.py [metrics/audit.json]
"""

import json
import sys
from pathlib import Path

COLUMNS = (("forget_accuracy", "forget acc"), ("retain_accuracy", "retain acc"), ("test_accuracy", "test acc"),
           ("mia_efficacy", "MIA-efficacy"), ("shadow_attack_auc", "shadow AUC"),
           ("shadow_attack_tpr_at_1pct_fpr", "shadow TPR@1%"), ("lira_fixed_variance_auc", "LiRA-fv AUC"),
           ("rmia_auc", "RMIA AUC"), ("forgetting_quality", "forgetting quality"), ("average_gap", "avg gap"),
           ("seconds", "seconds"), ("seconds_ratio_to_retrain", "s / retrain s"))


def main() -> None:
    metrics = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "metrics/audit.json").read_text())
    models = list(dict.fromkeys(key.split("/")[0] for key in metrics if key.count("/") == 1))
    models = sorted((m for m in models if f"{m}/test_accuracy" in metrics),
                    key=lambda m: (m != "target", m != "retrain", m))
    print("| model | " + " | ".join(label for _, label in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for model in models:
        cells = [f"{metrics[f'{model}/{key}']:.3f}" if f"{model}/{key}" in metrics else "" for key, _ in COLUMNS]
        print(f"| {model} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
