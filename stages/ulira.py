"""Stage ulira: U-LiRA, the unlearning-specific attack, for every method against the retrained model.

The online shadows unlearn the forget samples they trained on with each method (remi/audit/ulira.py);
the audit reads the result and gates it (`acceptance.max_ulira_auc`).
"""

from remi.audit.ulira import report, ulira_per_method
from remi.catalog import REFERENCE
from remi.data.datasets import load_dataset
from remi.pipeline import tracking
from remi.pipeline.entry_point import stage_main
from remi.pipeline.layout import REPORTS_DIR, metrics_path
from remi.pipeline.params import load_params
from remi.runtime.device import compute_device
from remi.runtime.files import write_bytes, write_json


def main() -> None:
    params = load_params()
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    methods = params.unlearn.methods
    sections = {"online_shadows": params.online_shadows} | {m: params.method(m) for m in methods if m != REFERENCE}
    upstream = ["prepare", "attack", "shadows", "online_shadows", *(f"unlearn/{m}" for m in methods)]
    with tracking.stage_run("ulira", "ulira", sections, upstream):
        device = compute_device()
        results = ulira_per_method(params, dataset, device)
        write_bytes(REPORTS_DIR / "ulira.md", report(results, params.data.dataset, params.audit.low_fprs).encode())
        write_json(metrics_path("ulira"), {"dataset": params.data.dataset, "methods": results})
        tracking.log_metrics(tracking.flatten(results))


if __name__ == "__main__":
    stage_main(main)
