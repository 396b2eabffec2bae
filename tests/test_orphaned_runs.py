"""A run whose process died is marked KILLED by the next run on the host; a live one is left alone."""

import os
import subprocess
import sys

import pytest

from remi.runtime.process_identity import is_alive_here, process_tags
from tests.conftest import REMI, REPO


def test_cleanup_marks_the_runs_of_dead_processes_killed_and_keeps_live_ones(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("remi-unlearning")
    dead_pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                                  capture_output=True, text=True).stdout)
    dead = client.create_run(experiment, tags=process_tags() | {"process.pid": str(dead_pid)}).info.run_id
    alive = client.create_run(experiment, tags=process_tags()).info.run_id  # this test's own process
    foreign = client.create_run(experiment, tags=process_tags() | {"process.host": "elsewhere"}).info.run_id
    # Another container with this host's name (`--network host`): the same kernel and boot, other process ids.
    boot = process_tags()["process.namespace"].split(":")[0]
    other_container = client.create_run(experiment, tags=process_tags(dead_pid) | {
        "process.namespace": f"{boot}:1"}).info.run_id
    # A run of an earlier boot (the machine crashed): its process is gone, whatever its pid names now.
    earlier_boot = client.create_run(experiment, tags=process_tags() | {
        "process.namespace": "an-earlier-boot:1"}).info.run_id
    before_recorded = {key: value for key, value in process_tags(dead_pid).items() if key != "process.namespace"}
    old_tags = client.create_run(experiment, tags=before_recorded).info.run_id  # by the host alone, as before
    result = subprocess.run([REMI, "reap-runs"], cwd=REPO, capture_output=True,
                            text=True, env=os.environ | {"MLFLOW_TRACKING_URI": uri}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Marked 3 run(s) KILLED" in result.stdout
    status = {run_id: client.get_run(run_id).info.status for run_id in (dead, alive, foreign, other_container,
                                                                        earlier_boot, old_tags)}
    assert status == {dead: "KILLED", alive: "RUNNING", foreign: "RUNNING", other_container: "RUNNING",
                      earlier_boot: "KILLED", old_tags: "KILLED"}
    assert process_tags()["process.namespace"] != "unknown"  # /proc says it here, so the check above is real


def test_a_bad_mlflow_environment_is_one_clear_error(tmp_path, monkeypatch):
    """Each stage reads these from the environment: a typo is named, not a traceback from MLflow's depths."""
    from remi.errors import UserError
    from remi.pipeline import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", " ")
    assert tracking.configured_mlflow().get_experiment_by_name(tracking.EXPERIMENT)  # blank: the default
    monkeypatch.setenv(tracking.PARENT_RUN_ENV, "0" * 32)  # left over from another store
    with pytest.raises(UserError, match=r"REMI_PIPELINE_RUN_ID='0000.* names no run in sqlite:"), \
            tracking.stage_run("prepare", "prepare", {}):
        pass
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "foo://bar")
    with pytest.raises(UserError, match="MLflow cannot use experiment 'remi-unlearning' on foo://bar"):
        tracking.configured_mlflow()


def test_remi_run_checks_the_environment_before_dvc_touches_anything(tmp_path):
    """A stage would stop on a bad REMI_* variable only after DVC had deleted its outputs."""
    for name, value, message in (("REMI_THREADS", "²", "is not a whole number of threads"),
                                 ("REMI_PROGRESS", "of", "is not one of live, items, off"),
                                 ("REMI_DEVICE", "tpu", "REMI_DEVICE"),
                                 ("REMI_EXECUTOR", "slurm", "is not an executor"),
                                 ("REMI_WORKERS", "-1", "is not a whole number of worker processes"),
                                 ("REMI_RAY_CPUS", "0", "REMI_RAY_CPUS='0' must be a number > 0"),
                                 ("REMI_RAY_GPUS", "half", "REMI_RAY_GPUS='half' must be a number >= 0")):
        # The Ray settings count only with the ray executor (Ray itself need not be installed to refuse them).
        executor = {"REMI_EXECUTOR": "ray"} if name.startswith("REMI_RAY") else {}
        env = os.environ | executor | {name: value, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'never.db'}"}
        result = subprocess.run([REMI, "run", "--dry"], cwd=REPO, capture_output=True, text=True, env=env,
                                timeout=120)
        assert result.returncode == 2 and message in result.stderr, (name, result.stderr[-2000:])
        assert "Running stage" not in result.stdout and not (tmp_path / "never.db").exists()


def test_only_a_live_process_of_this_namespace_is_alive_here():
    """`remi stack stop` signals what this says is alive: a pid of another namespace may name another process here."""
    ours = process_tags()
    assert is_alive_here(ours)
    assert not is_alive_here(ours | {"process.namespace": f"{ours['process.namespace'].split(':')[0]}:1"})
    assert not is_alive_here(ours | {"process.start_ticks": "0"})  # the pid now names another process
    assert not is_alive_here(ours | {"process.host": "elsewhere"})
