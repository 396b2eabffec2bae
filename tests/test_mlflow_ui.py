"""The MLflow UI, served by `remi ui` from a finished pipeline's store on 127.0.0.1 and read by headless
Chromium: it opens on the runs (not the GenAI overview), and Compare lines the audited models up by
the same metric names. With REMI_UI_SCREENSHOTS=<dir> the pages are also saved there as PNGs (the
images in docs/ come from that)."""

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from remi.operations.stack import free_loopback_port
from tests.conftest import REMI

pytestmark = pytest.mark.slow
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def ui(tiny_run, tmp_path_factory):
    """`remi ui` on a copy of the tiny run's store; yields (base URL, store URI); stopped by its PID."""
    store = tmp_path_factory.mktemp("ui") / "mlflow.db"
    shutil.copy(tiny_run / "mlflow.db", store)
    uri, port = f"sqlite:///{store}", free_loopback_port()
    server = subprocess.Popen([REMI, "ui", "--host", "127.0.0.1", "--port", str(port)], cwd=tiny_run,
                              env=os.environ | {"MLFLOW_TRACKING_URI": uri}, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):  # bounded: at most about a minute for the server to answer
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not answer /health within a minute")
        yield base, uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _dom(url: str, profile: Path, screenshot: str | None = None, height: int = 1100) -> str:
    """The page's DOM after its scripts ran (bounded virtual time)."""
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000",
             f"--window-size=1500,{height}"]
    dom = subprocess.run(["chromium", *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
    shots = os.environ.get("REMI_UI_SCREENSHOTS")
    if screenshot and shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        subprocess.run(["chromium", *flags, f"--screenshot={Path(shots) / screenshot}", url],
                       capture_output=True, timeout=180)
    return dom


def _text(dom: str) -> str:
    """What the DOM shows as text, whitespace collapsed."""
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())


def _metrics_grid(dom: str) -> tuple[list[str], int]:
    """Compare's metric names as rendered, and how many rows its grid holds.

    The grid is virtualised (react-virtualized, 300 px tall): only the first rows are in the DOM,
    the rest appear on scrolling, so the full list is read from the grid's scroll height."""
    section = dom[dom.index('aria-label="Metrics - Show diff only"'):dom.index(">Artifacts<")]
    scroll_height = int(re.search(r"innerScrollContainer[^>]*?[; ]height: (\d+)px", section).group(1))
    row_height = int(re.search(r'style="height: (\d+)px; left: 0px; position: absolute; top: 0px;', section).group(1))
    rendered = re.findall(r"metric=%22(\w+)%22", section)
    return list(dict.fromkeys(rendered)), scroll_height // row_height


def test_the_experiment_opens_on_its_runs(ui, tiny_run, tmp_path):
    from mlflow import MlflowClient

    base, uri = ui
    experiment = MlflowClient(uri).get_experiment_by_name("remi-unlearning")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    summary = subprocess.run([REMI, "summary"], cwd=tiny_run, capture_output=True, text=True,
                             env=os.environ | {"MLFLOW_TRACKING_URI": uri}).stdout
    link = re.search(r"http://127\.0\.0\.1:5000(/#/experiments/\S+)", summary).group(1)  # the link users get
    text = _text(_dom(base + link, tmp_path / "profile", "mlflow-runs.png"))
    assert text.startswith("Runs - Experiment") and "dvc repro" in text
    assert "Token Usage" not in text and "Traces 0" not in text  # not the GenAI overview


def test_compare_lines_the_models_up_by_the_audit_metrics(ui, tiny_run, tmp_path):
    from mlflow import MlflowClient

    base, uri = ui
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("remi-unlearning").experiment_id
    runs = client.search_runs([experiment], "tags.stage = 'evaluation'")
    assert sorted(r.info.run_name for r in runs) == ["evaluation:remi", "evaluation:retrain", "evaluation:target"]
    names = {r.info.run_name.removeprefix("evaluation:"): set(r.data.metrics) for r in runs}
    # The same names for every model, which is what Compare lines up; the original model was not
    # unlearned, so it has no seconds and no forgetting quality, and U-LiRA (stage ulira) asks only
    # whether a method's model could be the retrained one.
    assert names["target"] < names["retrain"] < names["remi"]
    assert names["retrain"] - names["target"] == {"seconds", "seconds_ratio_to_retrain", "forgetting_quality"}
    assert names["remi"] - names["retrain"] == {"ulira_auc", "ulira_held_out_auc"}
    audit = json.loads((tiny_run / "metrics/audit.json").read_text())
    remi_run = next(r for r in runs if r.info.run_name == "evaluation:remi")
    assert remi_run.data.metrics["shadow_attack_auc"] == pytest.approx(audit["remi/shadow_attack_auc"])
    query = urllib.parse.urlencode({"runs": json.dumps([r.info.run_id for r in runs]),
                                    "experiments": json.dumps([experiment])})
    dom = _dom(f"{base}/#/compare-runs?{query}", tmp_path / "profile", "mlflow-compare.png", height=3400)
    text = _text(dom)
    assert "Comparing 3 Runs" in text
    assert all(f"evaluation:{name}" in text for name in ("target", "retrain", "remi"))
    # One row per metric name, sorted, the rendered rows first among them.
    rendered, rows = _metrics_grid(dom)
    assert rows == len(names["remi"])
    assert len(rendered) >= 10 and rendered == sorted(names["remi"])[:len(rendered)]
    assert {"forget_accuracy", "average_gap", "gap_rmia_auc"} <= set(rendered)
