"""The release gate's checks: an unlearned model is registered as the `candidate` (remi.release)
only if it looks like retraining to every gated attack and keeps its accuracy."""

from typing import Any

from remi.audit import REFERENCE, check
from remi.errors import UserError


class GateFailed(UserError):
    """The audit's evidence does not meet the thresholds in params.yaml `gate`."""


def per_model_from_flat(flat: dict[str, float]) -> dict[str, dict[str, float]]:
    """Invert the audit's flat `<model>/<metric>` metrics file."""
    per_model: dict[str, dict[str, float]] = {}
    for key, value in flat.items():
        model, _, metric = key.partition("/")
        per_model.setdefault(model, {})[metric] = value
    return per_model


def gate_checks(per_model: dict[str, dict[str, float]], gate: dict[str, Any]) -> list[dict[str, Any]]:
    method = gate["method"]
    target, retrain, unlearned = per_model["target"], per_model[REFERENCE], per_model[method]
    rows = [check(f"abs({attack} AUC of {method} - retrain's)",
                  abs(unlearned[f"{attack}_auc"] - retrain[f"{attack}_auc"]), limit, "<=")
            for attack, limit in gate["max_auc_gap"].items()]
    rows += [
        check(f"abs(forget accuracy of {method} - retrain's)",
              abs(unlearned["forget_accuracy"] - retrain["forget_accuracy"]), gate["max_forget_accuracy_gap"], "<="),
        check(f"test accuracy drop of {method} from target",
              target["test_accuracy"] - unlearned["test_accuracy"], gate["max_test_accuracy_drop"], "<="),
    ]
    return rows


def failure_message(rows: list[dict[str, Any]]) -> str:
    failed = [r for r in rows if not r["passed"]]
    return "Gate failed; the registry was left as it was. Failing checks:\n" + "\n".join(
        f"  - {r['check']} {r['limit']:.4f}: measured {r['value']:.4f}" for r in failed)
