"""Stage gate: register the unlearned model as `candidate` if the audit passes params.yaml `gate`.

Exits 2, listing the failing checks, when it does not; the registry is then untouched.
"""

from remi import tracking
from remi.artifacts import MODEL_FILE
from remi.errors import UserError
from remi.gate import GateFailed, failure_message, gate_checks, per_model_from_flat
from remi.io import read_json, write_json
from remi.layout import metrics_path, run_record_path, split_path, unlearned_dir
from remi.params import load_params
from remi.release import ALIAS, register_candidate, release_tags
from remi.stage_main import stage_main


def main() -> None:
    params = load_params()
    gate = params["gate"]
    method_dir = unlearned_dir(gate["method"])
    if not (method_dir / MODEL_FILE).exists():
        raise UserError(f"gate.method = {gate['method']!r} has no model in {method_dir}; "
                        "list it in unlearn.methods.")
    rows = gate_checks(per_model_from_flat(read_json(metrics_path("audit"))), gate)
    passed = all(r["passed"] for r in rows)
    with tracking.stage_run("gate", "gate", {"gate": gate}, [f"unlearn/{gate['method']}"]):
        outcome = {"passed": float(passed), **{f"margin/{r['key']}": r["margin"] for r in rows}}
        tracking.log_metrics(outcome)
        if not passed:
            write_json(metrics_path("gate"), outcome)
            raise GateFailed(failure_message(rows))
        model_uri = read_json(run_record_path(f"unlearn/{gate['method']}"))["model_uri"]
        tags = release_tags(method_dir / MODEL_FILE, split_path("forget"), gate["method"], tracking.code_identity())
        version = register_candidate(tracking.tracking_uri(), model_uri, gate["registered_model"], tags)
        # Written after the alias moved: gate.json never says released for a model that is not.
        write_json(metrics_path("gate"), outcome | {"registered_version": version})
        tracking.log_metrics({"registered_version": version})
        print(f"Gate passed: {gate['registered_model']} version {version} is now @{ALIAS}.")


if __name__ == "__main__":
    stage_main(main)
