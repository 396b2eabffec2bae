"""params.yaml `acceptance`, checked: the audit report shows every limit as pass/miss for each method,
and the gate releases gate.method (remi.pipeline.release) only if every gated limit passes.

Gated are the limits on the model itself: each listed attack's AUC gap to retraining, U-LiRA's AUC
against the retrained model (stage ulira; reported only in a sequential cycle), the forget accuracy
gap, the test accuracy drop. Reported but not gated: the audit's power (the attack must detect
membership in the target before unlearning; it describes the experiment, not the model) and the
seconds ratio (it depends on the machine the methods ran on).
"""

import re
from typing import Any

from remi.catalog import REFERENCE
from remi.errors import UserError
from remi.params_schema import Acceptance

Check = dict[str, Any]
ORIGINAL_TEST_ACCURACY = "original_test_accuracy"


class GateFailed(UserError):
    """The audit's evidence does not meet the gated limits in params.yaml `acceptance`."""


def check(name: str, value: float, limit: float, sense: str, gated: bool) -> Check:
    """One threshold check; `key` is the check's name in metric-name-safe form."""
    passed = value >= limit if sense == ">=" else value <= limit
    return {"check": f"{name} {sense}", "key": re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_"),
            "value": value, "limit": limit, "passed": bool(passed), "gated": gated,
            "margin": (value - limit) if sense == ">=" else (limit - value)}


def acceptance_checks(per_model: dict[str, dict[str, float]], acceptance: Acceptance, method: str) -> list[Check]:
    """Every acceptance limit for `method`: value, limit, pass/miss, and whether the gate applies it."""
    target, retrain, unlearned = per_model["target"], per_model[REFERENCE], per_model[method]
    original, reference_accuracy = original_test_accuracy(target)
    rows = [check("target shadow-attack AUC (forget vs holdout)", target["shadow_attack_auc"],
                  acceptance.min_target_attack_auc, ">=", gated=False)]
    rows += [check(f"abs({attack} AUC of {method} - retrain's)",
                   abs(unlearned[f"{attack}_auc"] - retrain[f"{attack}_auc"]), limit, "<=", gated=True)
             for attack, limit in acceptance.max_auc_gap.items()]
    if method != REFERENCE:  # the compaction gates retraining itself, which has no U-LiRA row
        # Gated in a one-shot run only: in a sequential cycle the method unlearned the newest requests from
        # a release, while U-LiRA's references unlearn the whole forget set at once (remi/audit/ulira.py).
        # Either side of 0.5: an AUC of 0.3 tells the method from retraining as well as 0.7 does (flip the test).
        auc = unlearned["ulira_auc"]
        rows.append(check(f"U-LiRA AUC of {method} against retrain, or 1 - AUC below 0.5", max(auc, 1 - auc),
                          acceptance.max_ulira_auc, "<=", gated=ORIGINAL_TEST_ACCURACY not in target))
    rows += [
        check(f"abs(forget accuracy of {method} - retrain's)", abs(unlearned["forget_accuracy"] -
              retrain["forget_accuracy"]), acceptance.max_forget_accuracy_gap, "<=", gated=True),
        check(f"test accuracy drop of {method} from {original}", reference_accuracy - unlearned["test_accuracy"],
              acceptance.max_test_accuracy_drop, "<=", gated=True),
        check(f"seconds({method}) / seconds(retrain)", unlearned["seconds"] / retrain["seconds"],
              acceptance.max_seconds_ratio, "<=", gated=False),
    ]
    return rows


def original_test_accuracy(target: dict[str, float]) -> tuple[str, float]:
    """What the test accuracy drop is measured from. With sequential unlearning the "target" row is the
    release the cycle started from and carries the original target's `original_test_accuracy`, so the
    gate limits the drop accumulated over the cycles, not one cycle's."""
    if ORIGINAL_TEST_ACCURACY in target:
        return "the original target", target[ORIGINAL_TEST_ACCURACY]
    return "target", target["test_accuracy"]


def gate_checks(per_model: dict[str, dict[str, float]], acceptance: Acceptance, method: str) -> list[Check]:
    return [row for row in acceptance_checks(per_model, acceptance, method) if row["gated"]]


def per_model_from_flat(flat: dict[str, float]) -> dict[str, dict[str, float]]:
    """Invert the audit's flat `<model>/<metric>` metrics file."""
    per_model: dict[str, dict[str, float]] = {}
    for key, value in flat.items():
        model, _, metric = key.partition("/")
        per_model.setdefault(model, {})[metric] = value
    return per_model


def failure_message(rows: list[Check]) -> str:
    failed = [r for r in rows if not r["passed"]]
    return "Gate failed; the registry was left as it was. Failing checks:\n" + "\n".join(
        f"  - {r['check']} {r['limit']:.4f}: measured {r['value']:.4f}" for r in failed)
