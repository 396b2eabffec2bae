"""Stage gate: register gate.method's model as `candidate` if the audit meets the gated limits of
params.yaml `acceptance`.

Exits 2, listing the failing checks, when it does not; the registry is then untouched.
"""

from remi.audit.acceptance import GateFailed, failure_message, gate_checks, per_model_from_flat
from remi.errors import UserError
from remi.networks import MODEL_FILE
from remi.pipeline import tracking
from remi.pipeline.entry_point import stage_main
from remi.pipeline.layout import metrics_path, unlearned_dir
from remi.pipeline.params import load_params
from remi.pipeline.release import ALIAS, release_method
from remi.runtime.files import read_json, write_json


def main() -> None:
    params = load_params()
    gate = params.gate
    method_dir = unlearned_dir(gate.method)
    if not (method_dir / MODEL_FILE).exists():
        raise UserError(f"gate.method = {gate.method!r} has no model in {method_dir}; "
                        "list it in unlearn.methods.")
    rows = gate_checks(per_model_from_flat(read_json(metrics_path("audit"))), params.acceptance, gate.method)
    passed = all(r["passed"] for r in rows)
    sections = {"gate": gate, "acceptance": params.acceptance}
    with tracking.stage_run("gate", "gate", sections, [f"unlearn/{gate.method}"]):
        outcome = {"passed": float(passed), **{f"margin/{r['key']}": r["margin"] for r in rows}}
        tracking.log_metrics(outcome)
        if not passed:
            write_json(metrics_path("gate"), outcome)
            raise GateFailed(failure_message(rows))
        version = release_method(gate.method, gate.registered_model)
        # Written after the alias moved: gate.json never says released for a model that is not.
        write_json(metrics_path("gate"), outcome | {"registered_version": version})
        tracking.log_metrics({"registered_version": version})
        print(f"Gate passed: {gate.registered_model} version {version} is now @{ALIAS}.")


if __name__ == "__main__":
    stage_main(main)
