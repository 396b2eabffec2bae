"""The gate's checks on audit metrics (registration itself: tests/test_release.py)."""

from remi.audit.acceptance import acceptance_checks, failure_message, gate_checks, per_model_from_flat
from remi.params_schema import Acceptance

ACCEPTANCE = Acceptance(min_target_attack_auc=0.6, max_auc_gap={"shadow_attack": 0.03, "rmia": 0.05},
                        max_ulira_auc=0.6, max_forget_accuracy_gap=0.03, max_test_accuracy_drop=0.015,
                        max_seconds_ratio=0.1)


def _audit(remi_rmia_auc: float, remi_ulira_auc: float = 0.55) -> dict[str, float]:
    flat = {"remi/ulira_auc": remi_ulira_auc}
    for model, (rmia, forget, test) in {"target": (0.64, 1.0, 0.875), "retrain": (0.50, 0.89, 0.873),
                                        "remi": (remi_rmia_auc, 0.88, 0.866)}.items():
        flat |= {f"{model}/shadow_attack_auc": 0.51, f"{model}/rmia_auc": rmia,
                 f"{model}/forget_accuracy": forget, f"{model}/test_accuracy": test, f"{model}/seconds": 10.0}
    return flat


def test_checks_pass_and_fail_on_the_thresholds():
    assert all(r["passed"] for r in gate_checks(per_model_from_flat(_audit(0.54)), ACCEPTANCE, "remi"))
    rows = gate_checks(per_model_from_flat(_audit(0.56)), ACCEPTANCE, "remi")
    assert [r["key"] for r in rows if not r["passed"]] == ["abs_rmia_AUC_of_remi_retrain_s"]
    assert "rmia AUC of remi - retrain's) <= 0.0500: measured 0.0600" in failure_message(rows)


def test_a_trace_only_unlearned_references_see_fails_the_gate():
    """U-LiRA's AUC against the retrained model is a gated limit of its own, on the method only:
    retraining against itself (the compaction's check) has no such row."""
    rows = gate_checks(per_model_from_flat(_audit(0.54, remi_ulira_auc=0.61)), ACCEPTANCE, "remi")
    key = "U_LiRA_AUC_of_remi_against_retrain_or_1_AUC_below_0_5"
    assert [r["key"] for r in rows if not r["passed"]] == [key]
    assert "against retrain, or 1 - AUC below 0.5 <= 0.6000: measured 0.6100" in failure_message(rows)
    # Below 0.5 the test tells the two apart just as well, flipped: 0.39 is 0.61.
    rows = gate_checks(per_model_from_flat(_audit(0.54, remi_ulira_auc=0.39)), ACCEPTANCE, "remi")
    assert [r["key"] for r in rows if not r["passed"]] == [key]
    assert not any("U-LiRA" in r["check"] for r in gate_checks(per_model_from_flat(_audit(0.54)), ACCEPTANCE,
                                                                   "retrain"))


def test_in_a_sequential_cycle_ulira_is_reported_not_gated():
    """Its references unlearn the whole forget set at once, the method only the newest requests from a
    release: the two are not alike, so a miss must not block (or compact) the release."""
    flat = _audit(0.54, remi_ulira_auc=0.61) | {"target/original_test_accuracy": 0.875}
    row = next(r for r in acceptance_checks(per_model_from_flat(flat), ACCEPTANCE, "remi") if "U-LiRA" in r["check"])
    assert not row["passed"] and not row["gated"]
    assert all(r["passed"] for r in gate_checks(per_model_from_flat(flat), ACCEPTANCE, "remi"))


def test_the_report_and_the_gate_read_the_same_limits_and_only_model_limits_are_gated():
    """Audit power and speed are reported for every method but never block a release."""
    per_model = per_model_from_flat(_audit(0.54))  # target shadow AUC 0.51 < 0.6; seconds ratio 1.0 > 0.1
    every = acceptance_checks(per_model, ACCEPTANCE, "remi")
    missed = {r["key"] for r in every if not r["passed"]}
    assert missed == {"target_shadow_attack_AUC_forget_vs_holdout", "seconds_remi_seconds_retrain"}
    assert all(not r["gated"] for r in every if r["key"] in missed)
    gated = gate_checks(per_model, ACCEPTANCE, "remi")
    assert [r for r in every if r["gated"]] == gated and all(r["passed"] for r in gated)


def test_after_sequential_releases_the_drop_is_measured_from_the_original_target():
    """The "target" row is then the release the cycle started from; the gate still limits the drop
    accumulated since the original target, whose accuracy that row carries."""
    flat = _audit(0.54) | {"target/test_accuracy": 0.870, "target/original_test_accuracy": 0.885}
    drop = next(r for r in gate_checks(per_model_from_flat(flat), ACCEPTANCE, "remi") if "test accuracy" in r["check"])
    assert drop["check"] == "test accuracy drop of remi from the original target <="
    assert abs(drop["value"] - (0.885 - 0.866)) < 1e-9 and not drop["passed"]  # one cycle's drop (0.004) would pass
