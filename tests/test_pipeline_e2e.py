"""The real pipeline (`dvc repro` through `remi run`) on the tiny profile, in a copy of the session's run."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from remi.audit.report import EXPOSED_SAMPLES
from tests.conftest import FIRST_RUN_LOG, clone_run

pytestmark = pytest.mark.slow
STAGES = {"check_params", "prepare", "train_target", "train_shadows", "train_online_shadows", "train_attack",
          "unlearn@retrain", "unlearn@remi", "forgetting_quality", "ulira", "audit", "gate"}


@pytest.fixture(scope="module")
def pipeline(tiny_run, tmp_path_factory):
    """A copy of the session's finished tiny pipeline (a git+DVC copy of the repository, the tiny profile
    applied, its own MLflow store) that these tests change step by step."""
    work = tmp_path_factory.mktemp("pipeline") / "repo"
    return work, clone_run(tiny_run, work)


def stages_ran(stdout: str) -> set[str]:
    return {line.split("'")[1] for line in stdout.splitlines() if line.startswith("Running stage")}


def repro(run):
    result = run(sys.executable, "-m", "remi", "run")
    return result, stages_ran(result.stdout)


def set_params(work, **sections):
    params = yaml.safe_load((work / "params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_full_run_outputs_metrics_and_the_attack_sees_forgetting(pipeline, tiny_run):
    work, _ = pipeline
    # The first `remi run` of the copy (the fixture asserted it succeeded) ran every stage.
    assert stages_ran((tiny_run.parent / FIRST_RUN_LOG).read_text()) == STAGES
    for path in ("models/target/model.pt", "models/attack/attack.pt", "models/shadows/shadow_002/outputs.pt",
                 "models/unlearned/remi/model.pt", "models/unlearned/retrain/model.pt",
                 "reports/audit/audit.md", "reports/audit/roc.png", "reports/membership_scores.csv"):
        assert (work / path).stat().st_size > 0, path
    audit = json.loads((work / "metrics/audit.json").read_text())
    # The attack separates members before unlearning, and clearly less after.
    assert audit["target/shadow_attack_auc"] > 0.6
    assert audit["target/shadow_attack_auc"] - audit["remi/shadow_attack_auc"] > 0.05
    assert abs(audit["remi/shadow_attack_auc"] - audit["retrain/shadow_attack_auc"]) < 0.1
    assert audit["target/forget_accuracy"] > audit["remi/forget_accuracy"]
    assert "| test accuracy |" in (work / "reports/audit/audit.md").read_text()
    # A random forget set (an experiment, not erasure requests) is shown as images too.
    assert (work / "reports/audit/audit.html").read_text().count('alt="sample ') == EXPOSED_SAMPLES
    quality = json.loads((work / "metrics/forgetting_quality.json").read_text())
    assert 0 < quality["remi/forgetting_quality"] <= 1 and 0 < quality["retrain_vs_retrain/forgetting_quality"] <= 1
    assert "remi/forgetting_quality" in audit and "retrain/forgetting_quality" in audit


def test_ulira_stage_scores_remi_with_unlearned_references_and_the_audit_gates_it(pipeline):
    work, _ = pipeline
    ulira = json.loads((work / "metrics/ulira.json").read_text())["methods"]
    assert list(ulira) == ["remi"]  # retraining is what the others are compared with
    remi = ulira["remi"]
    assert remi["references"] == 4  # the tiny profile's online shadows
    assert 0 <= remi["model"]["auc"] <= 1 and 0 <= remi["held_out"]["auc"] <= 1
    assert set(remi["confidence_shift"]) == {"forget", "retain", "test"}
    assert f"| remi | 4 | {remi['model']['auc']:.3f} |" in (work / "reports/ulira.md").read_text()
    audit = json.loads((work / "metrics/audit.json").read_text())
    assert audit["remi/ulira_auc"] == remi["model"]["auc"] and "retrain/ulira_auc" not in audit
    report = (work / "reports/audit/audit.md").read_text()
    limit = yaml.safe_load((work / "params.yaml").read_text())["acceptance"]["max_ulira_auc"]
    auc = max(remi["model"]["auc"], 1 - remi["model"]["auc"])
    row = f"| U-LiRA AUC of remi against retrain, or 1 - AUC below 0.5 <= | {auc:.4f} | {limit:.4f} | pass | yes |"
    assert row in report


def test_mlflow_run_tree_and_lineage(pipeline):
    from mlflow import MlflowClient

    work, _ = pipeline
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("remi-unlearning")
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    parents = [r for r in runs if r.data.tags.get("stage") == "pipeline"]
    parent = min(parents, key=lambda r: r.info.start_time)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert {r.data.tags["stage"] for r in children} == {
        "prepare", "train_target", "train_shadows", "train_online_shadows", "train_attack", "unlearn",
        "forgetting_quality", "ulira", "audit", "gate"}
    for stage, count in (("train_shadows", 3), ("train_online_shadows", 4)):
        stage_run = next(r for r in children if r.data.tags["stage"] == stage)
        assert len([r for r in runs if r.data.tags.get("mlflow.parentRunId") == stage_run.info.run_id]) == count
    for stage in ("train_shadows", "train_online_shadows", "forgetting_quality"):  # where the models trained
        stage_run = next(r for r in children if r.data.tags["stage"] == stage)
        assert stage_run.data.tags["executor"] in ("local", "processes"), stage  # never the setting "auto"
    remi_run = next(r for r in children if r.data.tags.get("role") == "remi")
    target_record = json.loads((work / "lineage/target.json").read_text())
    assert remi_run.data.tags["upstream.target"] == target_record["run_id"]
    assert len(remi_run.data.tags["git_commit"]) == 40
    assert "remi.lr" in remi_run.data.params and "unlearn_seconds" in remi_run.data.metrics
    assert client.get_metric_history(remi_run.info.run_id, "signal_auc")  # the per-step curve
    assert any(m.name == "remi_model" for m in client.search_logged_models([experiment.experiment_id]))


def test_second_repro_runs_nothing(pipeline):
    _, run = pipeline
    result, ran = repro(run)
    assert result.returncode == 0 and ran == set()


def test_adding_a_shadow_trains_only_its_block(pipeline):
    work, run = pipeline
    before = {i: (work / f"models/shadows/shadow_{i:03d}/outputs.pt").read_bytes() for i in range(3)}
    set_params(work, shadows={"count": 4})  # tiny profile: blocks of 2, so [0, 1] [2] -> [0, 1] [2, 3]
    result, ran = repro(run)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train_target" not in ran and "train_shadows" in ran
    shadows = json.loads((work / "metrics/train_shadows.json").read_text())
    assert (shadows["shadows_trained"], shadows["shadows_reused"]) == (2, 2)
    after = {i: (work / f"models/shadows/shadow_{i:03d}/outputs.pt").read_bytes() for i in range(3)}
    assert after[0] == before[0] and after[1] == before[1]  # the full block was kept as it was


def test_a_damaged_shadow_trains_again_instead_of_being_reused(pipeline):
    """Its record still matches, so it was reused: every later stage failed on it, and `dvc repro --force`, which the
    error message advises, reused it again."""
    work, run = pipeline
    outputs = work / "models/shadows/shadow_000/outputs.pt"
    outputs.write_bytes(outputs.read_bytes()[:100])  # bit rot, or a copy cut short
    result, ran = repro(run)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train_shadows" in ran
    shadows = json.loads((work / "metrics/train_shadows.json").read_text())
    assert (shadows["shadows_trained"], shadows["shadows_reused"]) == (2, 2)  # shadow_000's block of 2
    assert len(outputs.read_bytes()) > 100


def test_new_erasure_request_reruns_only_prepare_unlearn_and_audit(pipeline):
    work, run = pipeline
    target_train = json.loads((work / "data/splits/target_train.json").read_text())
    request = {"request_id": "req-001", "dataset": "fashion_mnist",
               "dataset_digest": target_train["dataset_digest"],
               "sample_ids": target_train["sample_ids"][:50]}
    (work / "data/requests/req-001.json").write_text(json.dumps(request))
    set_params(work, forget={"mode": "requests"})
    result, ran = repro(run)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ran == {"check_params", "prepare", "unlearn@retrain", "unlearn@remi", "forgetting_quality", "ulira",
                   "audit", "gate"}
    forget = json.loads((work / "data/splits/forget.json").read_text())
    assert forget["sample_ids"] == sorted(request["sample_ids"]) and forget["requests"] == ["req-001"]


def test_bad_erasure_request_fails_with_report_and_keeps_previous_outputs(pipeline):
    work, run = pipeline
    before = {p: (work / p).read_bytes() for p in ("data/splits/forget.json", "dvc.lock",
                                                    "models/unlearned/remi/model.pt")}
    digest = json.loads((work / "data/splits/target_train.json").read_text())["dataset_digest"]
    (work / "data/requests/req-002.json").write_text(json.dumps(
        {"request_id": "req-002", "dataset": "fashion_mnist", "dataset_digest": digest,
         "sample_ids": [99_999_999, 7, 7]}))
    result, ran = repro(run)
    assert result.returncode != 0 and ran == {"prepare"}
    assert "Great Expectations suite `erasure_requests` failed" in result.stderr
    assert "99999999" in result.stderr
    assert all((work / p).read_bytes() == content for p, content in before.items())
    (work / "data/requests/req-002.json").unlink()


def test_reviewer_loads_a_model_and_a_split_in_three_lines(pipeline, monkeypatch):
    import torch

    from remi.api import load_model, load_samples

    work, _ = pipeline
    monkeypatch.chdir(work)
    model = load_model("remi")
    inputs, labels = load_samples("forget")
    forget = json.loads((work / "data/splits/forget.json").read_text())
    assert len(inputs) == len(labels) == len(forget["sample_ids"])
    with torch.no_grad():
        assert (model(inputs).argmax(1) == labels).float().mean() > 0.5


def test_html_report_renders_in_a_headless_browser(pipeline, tmp_path):
    import base64
    import io
    import re

    from PIL import Image

    work, _ = pipeline
    page = (work / "reports/audit/audit.html").resolve()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(["chromium", *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    for heading in ("Metrics", "Acceptance", "ROC curves (log-log)", "Membership-score histograms",
                    "Per-class accuracy", "Most exposed forget samples"):
        assert f"<h2>{heading}" in dom, heading
    for attack in ("shadow_attack", "lira", "rmia", "mia_efficacy"):
        assert f"{attack} AUC" in dom
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', dom)
    # The forget set holds erasure requests by now: the exposed samples are listed by ID, not shown.
    assert len(images) == 2 and "By ID only" in dom  # ROC + histograms
    sizes = [Image.open(io.BytesIO(base64.b64decode(data))).size for data in images]
    assert max(sizes)[0] > 800  # the ROC grid
    shot = tmp_path / "page.png"
    subprocess.run(["chromium", *flags, f"--screenshot={shot}", "--window-size=1400,2400", page.as_uri()],
                   capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert (pixels < 200).mean() > 0.02  # text, tables and plots drawn, not a blank page


def test_the_gate_says_when_the_registry_refuses_a_model_that_drops_a_request(pipeline):
    """The candidate honours a request this run's forget set lacks (as when another pipeline shares the store):
    the gate exits non-zero, the alias stays, and gate.json says why, which `remi cycle` reports (exit 5)."""
    import mlflow

    from remi.pipeline.release import request_tags

    work, run = pipeline
    uri, previous = f"sqlite:///{work / 'mlflow.db'}", mlflow.get_tracking_uri()
    client = mlflow.MlflowClient(uri)
    name = yaml.safe_load((work / "params.yaml").read_text())["gate"]["registered_model"]
    before = client.get_model_version_by_alias(name, "candidate")
    mlflow.set_tracking_uri(uri)  # where MLflow looks up the logged model a `models:/` source names
    try:
        other = client.create_model_version(name, before.source, run_id=before.run_id,
                                            tags={"model_md5": "other", "forget_set_md5": "other"}
                                            | request_tags(["ghost-request"]))
    finally:
        mlflow.set_tracking_uri(previous)
    client.set_registered_model_alias(name, "candidate", other.version)
    try:
        result = run(sys.executable, "-m", "remi", "run", "--force", "--single-item", "gate")
        assert result.returncode != 0 and "leaves out 1 of them: ghost-request" in result.stderr, result.stderr
        gate = json.loads((work / "metrics/gate.json").read_text())
        assert "ghost-request" in gate["registry_refused"] and "registered_version" not in gate
        assert "Gate: the registry refused the model" in result.stdout and "Traceback" not in result.stderr
        assert client.get_model_version_by_alias(name, "candidate").version == other.version
    finally:
        client.set_registered_model_alias(name, "candidate", before.version)


def test_failed_gate_exits_non_zero_and_keeps_the_candidate(pipeline):
    from mlflow import MlflowClient

    work, run = pipeline
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    name = yaml.safe_load((work / "params.yaml").read_text())["gate"]["registered_model"]
    before = client.get_model_version_by_alias(name, "candidate")
    versions = len(client.search_model_versions(f"name='{name}'"))
    # ReMI's test accuracy is below the target's, so a zero tolerance must fail. The audit re-runs
    # too: its report shows the same limit, now missed.
    set_params(work, acceptance={"max_test_accuracy_drop": 0.0})
    result, ran = repro(run)
    assert result.returncode != 0 and ran == {"check_params", "audit", "gate"}
    report = (work / "reports/audit/audit.md").read_text()
    assert re.search(r"\| test accuracy drop of remi from target <= \| [0-9.]+ \| 0\.0000 \| MISS", report)
    assert "Gate failed" in result.stderr and "test accuracy drop of remi from target" in result.stderr
    assert json.loads((work / "metrics/gate.json").read_text())["passed"] == 0
    after = client.get_model_version_by_alias(name, "candidate")
    assert (after.version, after.run_id) == (before.version, before.run_id)
    assert len(client.search_model_versions(f"name='{name}'")) == versions
    assert before.tags["forget_set_md5"] and len(before.tags["git_commit"]) == 40


def test_with_compaction_on_a_failed_gate_releases_the_retrained_model(pipeline):
    """Sequential unlearning's compaction (cycle.compact_on_gate_failure): ReMI misses a limit that
    retraining meets by definition (an AUC gap of zero to itself), so the gate releases the model
    retrained from scratch instead, and says so."""
    from mlflow import MlflowClient

    work, run = pipeline
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    name = yaml.safe_load((work / "params.yaml").read_text())["gate"]["registered_model"]
    set_params(work, acceptance={"max_test_accuracy_drop": 1.0, "max_auc_gap": {"shadow_attack": 0.0}},
               cycle={"sequential": True, "compact_every": 0, "compact_on_gate_failure": True})
    result, ran = repro(run)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert ran == {"check_params", "audit", "gate"}
    gate = json.loads((work / "metrics/gate.json").read_text())
    assert gate["passed"] == 0 and gate["released_method"] == "retrain" and "failed the gate" in gate["compaction"]
    candidate = client.get_model_version_by_alias(name, "candidate")
    assert int(candidate.version) == gate["registered_version"] and candidate.tags["method"] == "retrain"
    assert "failed the gate" in candidate.tags["compaction"] and "Gate: compaction" in result.stdout
