"""A run whose process died is marked KILLED by the next run on the host; a live one is left alone."""

import os
import subprocess
import sys

from remi.runtime.process_identity import process_tags
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
    result = subprocess.run([REMI, "reap-runs"], cwd=REPO, capture_output=True,
                            text=True, env=os.environ | {"MLFLOW_TRACKING_URI": uri}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Marked 1 run(s) KILLED" in result.stdout
    status = {run_id: client.get_run(run_id).info.status for run_id in (dead, alive, foreign)}
    assert status == {dead: "KILLED", alive: "RUNNING", foreign: "RUNNING"}
