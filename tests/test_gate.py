"""The gate against a real MLflow store (sqlite): pass registers @candidate, fail changes nothing."""

import pytest
import torch

from remi.gate import ALIAS, GateFailed, failure_message, gate_checks, per_model_from_flat, register_candidate, release

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


@pytest.fixture
def store(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("gate-test")
    uris = []
    for _ in range(2):
        with mlflow.start_run():
            uris.append(mlflow.pytorch.log_model(torch.nn.Linear(2, 2), name="model",
                                                 input_example=torch.zeros(1, 2).numpy(),
                                                 pip_requirements=["torch"]).model_uri)
    return mlflow.MlflowClient(), uris


def test_failed_gate_leaves_the_registered_candidate_untouched(store):
    client, (first_uri, second_uri) = store
    version = register_candidate(first_uri, "unlearned", {"forget_set_md5": "abc"})
    assert client.get_model_version_by_alias("unlearned", ALIAS).version == version
    with pytest.raises(GateFailed, match="rmia AUC"):
        release(gate_checks(per_model_from_flat(_audit(0.60)), GATE), second_uri, "unlearned", {})
    candidate = client.get_model_version_by_alias("unlearned", ALIAS)
    assert candidate.version == version and candidate.tags["forget_set_md5"] == "abc"
    assert len(client.search_model_versions("name='unlearned'")) == 1
    new_version = release(gate_checks(per_model_from_flat(_audit(0.52)), GATE), second_uri, "unlearned", {})
    assert client.get_model_version_by_alias("unlearned", ALIAS).version == new_version != version
