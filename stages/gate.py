"""Stage gate: register a model as `candidate` if the audit meets the gated limits of params.yaml
`acceptance`: gate.method's model, or with sequential unlearning, when compaction is due, the
retrained one (remi/pipeline/compaction.py).

Exits 2, listing the failing checks, when nothing can be released, or saying why the registry refused the
model (it would leave out a request the current @candidate honours); the registry is then untouched.
"""

from remi.audit.acceptance import GateFailed, failure_message, gate_checks, per_model_from_flat
from remi.catalog import REFERENCE
from remi.errors import UserError
from remi.networks import MODEL_FILE
from remi.pipeline import tracking
from remi.pipeline.compaction import compaction_reason
from remi.pipeline.entry_point import stage_main
from remi.pipeline.layout import metrics_path, unlearned_dir
from remi.pipeline.params import load_params
from remi.pipeline.release import ALIAS, RegistryRefused, release_method
from remi.pipeline.starting_model import read_starting_model
from remi.runtime.files import read_json, write_json


def main() -> None:
    params = load_params()
    gate = params.gate
    method_dir = unlearned_dir(gate.method)
    if not (method_dir / MODEL_FILE).exists():
        raise UserError(f"gate.method = {gate.method!r} has no model in {method_dir}; "
                        "list it in unlearn.methods.")
    audit = per_model_from_flat(read_json(metrics_path("audit")))
    rows = gate_checks(audit, params.acceptance, gate.method)
    passed = all(r["passed"] for r in rows)
    released = gate.method if passed else None
    compaction = compaction_reason(params.cycle, read_starting_model(), passed)
    if compaction and all(r["passed"] for r in gate_checks(audit, params.acceptance, REFERENCE)):
        released = REFERENCE
    elif compaction:
        print(f"Compaction was due ({compaction}), but the retrained model misses the gated limits.")
        compaction = None
    sections = {"gate": gate, "acceptance": params.acceptance, "cycle": params.cycle}
    with tracking.stage_run("gate", "gate", sections, [f"unlearn/{gate.method}"]):
        outcome = {"passed": float(passed), **{f"margin/{r['key']}": r["margin"] for r in rows}}
        tracking.log_metrics(outcome)
        if released is None:
            write_json(metrics_path("gate"), outcome)
            raise GateFailed(failure_message(rows))
        try:
            version = release_method(released, gate.registered_model,
                                     {"compaction": compaction} if compaction else None)
        except RegistryRefused as refused:  # said in gate.json too, so `remi cycle` knows the gate ran
            write_json(metrics_path("gate"), outcome | {"registry_refused": str(refused)})
            raise
        # Written after the alias moved: gate.json never says released for a model that is not.
        write_json(metrics_path("gate"), outcome | {"registered_version": version, "released_method": released}
                   | ({"compaction": compaction} if compaction else {}))
        tracking.log_metrics({"registered_version": version})
        if compaction:
            print(f"Compaction ({compaction}): {gate.registered_model} version {version}, the model retrained "
                  f"from scratch, is now @{ALIAS}.")
        else:
            print(f"Gate passed: {gate.registered_model} version {version} is now @{ALIAS}.")


if __name__ == "__main__":
    stage_main(main)
