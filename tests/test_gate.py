"""The gate's checks on audit metrics (registration itself: tests/test_release.py)."""

from remi.gate import failure_message, gate_checks, per_model_from_flat

GATE = {"method": "remi", "max_auc_gap": {"shadow_attack": 0.03, "rmia": 0.05},
        "max_forget_accuracy_gap": 0.03, "max_test_accuracy_drop": 0.015}


def _audit(remi_rmia_auc: float) -> dict[str, float]:
    flat = {}
    for model, (rmia, forget, test) in {"target": (0.64, 1.0, 0.875), "retrain": (0.50, 0.89, 0.873),
                                        "remi": (remi_rmia_auc, 0.88, 0.866)}.items():
        flat |= {f"{model}/shadow_attack_auc": 0.51, f"{model}/rmia_auc": rmia,
                 f"{model}/forget_accuracy": forget, f"{model}/test_accuracy": test}
    return flat


def test_checks_pass_and_fail_on_the_thresholds():
    assert all(r["passed"] for r in gate_checks(per_model_from_flat(_audit(0.54)), GATE))
    rows = gate_checks(per_model_from_flat(_audit(0.56)), GATE)
    assert [r["key"] for r in rows if not r["passed"]] == ["abs_rmia_AUC_of_remi_retrain_s"]
    assert "rmia AUC of remi - retrain's) <= 0.0500: measured 0.0600" in failure_message(rows)
