"""SIGKILL anywhere in any stage, then `dvc repro`: the same bytes as a clean run, no MLflow run left
RUNNING, no duplicate or alias-less registry version. And two clean runs give the same bytes.

Each stage is forced (`dvc repro --force --single-item`) in its own process group and the whole
group is killed at a random moment within the stage's clean running time (seeded, several seeds:
REMI_KILL_SEEDS, default 2).
"""

import os
import random
import signal
import subprocess
import sys
import time

import psutil
import pytest
import yaml

from tests.conftest import clone_run, output_hashes, pipeline_copy, stable_lock

pytestmark = pytest.mark.slow
SEEDS = range(int(os.environ.get("REMI_KILL_SEEDS", "2")))
STAGES = ("check_params", "prepare", "train_target", "train_shadows", "train_attack", "unlearn@retrain",
          "unlearn@remi", "forgetting_quality", "ulira", "audit", "gate")
STARTUP_SECONDS = 4.0  # dvc and the stage's imports, before its MLflow run starts


def _client(work):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{work / 'mlflow.db'}")


def registry_state(work) -> tuple[list[str], str]:
    name = yaml.safe_load((work / "params.yaml").read_text())["gate"]["registered_model"]
    client = _client(work)
    versions = sorted(v.version for v in client.search_model_versions(f"name='{name}'"))
    return [str(v) for v in versions], str(client.get_model_version_by_alias(name, "candidate").version)


def running_runs(work) -> list[str]:
    client = _client(work)
    experiment = client.get_experiment_by_name("remi-unlearning")
    return [r.info.run_name for r in client.search_runs([experiment.experiment_id],
                                                        filter_string="attributes.status = 'RUNNING'")]


def stage_seconds(work) -> dict[str, float]:
    """How long each stage's MLflow run took in the clean run: the window a kill is drawn from."""
    client = _client(work)
    experiment = client.get_experiment_by_name("remi-unlearning")
    seconds: dict[str, float] = {}
    for run in client.search_runs([experiment.experiment_id]):
        stage, role = run.data.tags.get("stage"), run.data.tags.get("role")
        name = f"unlearn@{role}" if stage == "unlearn" else stage
        if run.info.end_time and name in STAGES:
            seconds[name] = max(seconds.get(name, 0.0), (run.info.end_time - run.info.start_time) / 1000)
    return seconds


@pytest.fixture(scope="module")
def clean(tiny_run, tmp_path_factory):
    work = tmp_path_factory.mktemp("kill") / "repo"
    run = clone_run(tiny_run, work)
    return work, run, output_hashes(work, stable_only=True), stable_lock(work), registry_state(work), \
        stage_seconds(work)


def kill_during(work, env, stage: str, after: float) -> bool:
    """Force `stage` and SIGKILL its whole process group after `after` seconds; True if it was killed."""
    process = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "--force", "--single-item", stage],
                               cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        process.wait(timeout=after)
        return False  # finished before the kill
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        return True


@pytest.mark.parametrize("stage", STAGES)
def test_kill_anywhere_in_a_stage_then_repro_gives_the_clean_state(clean, stage):
    work, run, hashes, lock, registry, seconds = clean
    window = STARTUP_SECONDS + seconds.get(stage, 1.0)
    for seed in SEEDS:
        after = random.Random(f"{stage}-{seed}").uniform(0.2, window)
        # A draw past the stage's end (it finished first) checks a plain forced re-run instead.
        what = f"{stage} {'killed' if kill_during(work, run.env, stage, after) else 'finished'} at {after:.1f} s"
        result = run(sys.executable, "-m", "remi", "run")
        assert result.returncode == 0, f"{what}:\n{result.stderr[-3000:]}"
        assert output_hashes(work, stable_only=True) == hashes, what
        assert stable_lock(work) == lock, what
        assert running_runs(work) == [], what
        assert registry_state(work) == registry, what


def _stage_processes(work, stage: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        if process.info["cwd"] == str(work) and f"stages.{stage}" in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def test_a_terminated_run_stops_its_stage_processes_too(clean):
    """SIGTERM to `remi run` alone (a scheduler's timeout, `kill <pid>`): DVC and the stage it runs stop too,
    the stage's MLflow run ends, and the next run gives the clean state. A stage left running would go on
    writing outputs that DVC never records, beside the next run's."""
    work, run, hashes, lock, registry, _ = clean
    with (work / "terminated.log").open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "remi", "run", "--force", "--single-item",
                                    "forgetting_quality"], cwd=work, env=run.env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while not _stage_processes(work, "forgetting_quality"):
        assert process.poll() is None and time.monotonic() < deadline, (work / "terminated.log").read_text()[-3000:]
        time.sleep(0.2)
    time.sleep(STARTUP_SECONDS)  # into its MLflow run
    os.kill(process.pid, signal.SIGTERM)  # this process only, not its group
    assert process.wait(timeout=90) == 128 + signal.SIGTERM
    assert _stage_processes(work, "forgetting_quality") == []
    assert running_runs(work) == []
    result = run(sys.executable, "-m", "remi", "run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert output_hashes(work, stable_only=True) == hashes
    assert stable_lock(work) == lock and registry_state(work) == registry


def test_two_clean_runs_give_the_same_bytes(tiny_run, tmp_path):
    """Splits, models and reports byte-identical; dvc.lock differs only in files that record seconds."""
    work = tmp_path / "repo"
    run = pipeline_copy(work, "profiles/tiny.yaml")
    result = run(sys.executable, "-m", "remi", "run")
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = output_hashes(tiny_run, stable_only=True), output_hashes(work, stable_only=True)
    assert first == second
    assert any(name.startswith("models/") for name in first) and "reports/audit/roc.png" in first
    assert stable_lock(tiny_run) == stable_lock(work)
    for path in ("models", "reports/audit", "lineage"):
        for entry in (work / path).rglob("*"):
            mode = entry.stat().st_mode & 0o777
            assert mode & 0o044 == 0o044, f"{entry} is {oct(mode)}: other users of the host cannot read it"
