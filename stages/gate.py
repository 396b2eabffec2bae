"""Stage gate: register the unlearned model as `candidate` if the audit passes params.yaml `gate`.

Exits non-zero, listing the failing checks, when it does not; the registry is then untouched.
"""

from remi import tracking
from remi.errors import UserError
from remi.gate import ALIAS, gate_checks, per_model_from_flat, release
from remi.io import file_md5, read_json, write_json
from remi.layout import metrics_path, split_path, unlearned_dir
from remi.params import load_params
from remi.stage_main import stage_main


def main() -> None:
    params = load_params()
    gate = params["gate"]
    method_dir = unlearned_dir(gate["method"])
    if not method_dir.exists():
        raise UserError(f"gate.method = {gate['method']!r} has no model in {method_dir}; "
                        "list it in unlearn.methods.")
    rows = gate_checks(per_model_from_flat(read_json(metrics_path("audit"))), gate)
    with tracking.stage_run("gate", "gate", {"gate": gate}, {gate["method"]: method_dir}):
        outcome = {"passed": float(all(r["passed"] for r in rows)), **{f"margin/{r['key']}": r["margin"] for r in rows}}
        tracking.log_metrics(outcome)
        write_json(metrics_path("gate"), outcome)
        identity = tracking.code_identity()
        # Registration is the last step: a failed gate raises before it, and nothing after it can fail.
        version = release(rows, read_json(method_dir / tracking.RUN_RECORD)["model_uri"], gate["registered_model"],
                          {"git_commit": identity["git_commit"], "dvc_lock_md5": identity["dvc_lock_md5"],
                           "forget_set_md5": file_md5(split_path("forget")), "method": gate["method"]})
        print(f"Gate passed: {gate['registered_model']} version {version} is now @{ALIAS}.")


if __name__ == "__main__":
    stage_main(main)
