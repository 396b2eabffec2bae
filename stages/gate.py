"""Stage gate: register the unlearned model as `candidate` if the audit passes params.yaml `gate`.

Exits 2, listing the failing checks, when it does not; the registry is then untouched.
"""

import hashlib

from remi import tracking
from remi.artifacts import MODEL_FILE
from remi.errors import UserError
from remi.gate import GateFailed, failure_message, gate_checks, per_model_from_flat
from remi.io import file_md5, read_json, write_json
from remi.layout import metrics_path, run_record_path, split_path, unlearned_dir
from remi.params import load_params
from remi.release import ALIAS, REQUESTS_TAG, register_candidate
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
        version = register_candidate(tracking.tracking_uri(), read_json(run_record_path(
            f"unlearn/{gate['method']}"))["model_uri"], gate["registered_model"], _release_tags(gate["method"]))
        # Written after the alias moved: gate.json never says released for a model that is not.
        write_json(metrics_path("gate"), outcome | {"registered_version": version})
        tracking.log_metrics({"registered_version": version})
        print(f"Gate passed: {gate['registered_model']} version {version} is now @{ALIAS}.")


def _release_tags(method: str) -> dict[str, str]:
    """What the registered version is (its identity) and what it honours."""
    forget = read_json(split_path("forget"))
    identity = tracking.code_identity()
    return {"model_md5": file_md5(unlearned_dir(method) / MODEL_FILE),
            "forget_set_md5": file_md5(split_path("forget")),
            REQUESTS_TAG: str(len(forget.get("requests", []))),
            "erasure_request_ids_sha256": hashlib.sha256("\n".join(forget.get("requests", [])).encode()).hexdigest(),
            "dataset_digest": forget["dataset_digest"], "method": method,
            "git_commit": identity["git_commit"], "dvc_lock_md5": identity["dvc_lock_md5"]}


if __name__ == "__main__":
    stage_main(main)
