"""Executors (remi/runtime/executors.py): the settings they refuse, and the Ray executor training shadows
in Ray tasks, on loopback only, into the same files as the local executor."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from remi.errors import UserError
from remi.runtime.executors import map_in_order
from tests.conftest import clone_run


def _add(item: int, offset: int) -> int:
    return item + offset


def test_local_executor_keeps_the_order_of_items(monkeypatch):
    monkeypatch.delenv("REMI_EXECUTOR", raising=False)
    assert list(map_in_order(_add, [3, 1, 2], offset=10)) == [13, 11, 12]


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("REMI_EXECUTOR", "dask", "is not an executor"),
    ("REMI_RAY_CPUS", "0", "must be a number > 0"),
    ("REMI_RAY_GPUS", "-0.5", "must be a number >= 0"),
    ("REMI_RAY_GPUS", "half", "must be a number >= 0"),
])
def test_bad_executor_settings_are_refused_before_any_work(monkeypatch, variable, value, message):
    monkeypatch.setenv("REMI_EXECUTOR", "ray")
    monkeypatch.setenv(variable, value)
    with pytest.raises(UserError, match=message):
        next(map_in_order(_add, [1], offset=0))


def _shadow_files(work: Path) -> dict[str, str]:
    shadows = work / "models" / "shadows"
    return {str(path.relative_to(shadows)): hashlib.md5(path.read_bytes()).hexdigest()
            for path in sorted(shadows.rglob("*")) if path.is_file() and path.name != ".gitignore"}


def _ray_daemons() -> set[int]:
    found = subprocess.run(["pgrep", "-f", "raylet|gcs_server"], capture_output=True, text=True).stdout
    return {int(pid) for pid in found.split()}


def _ran(result: subprocess.CompletedProcess) -> set[str]:
    return {line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage")}


@pytest.mark.slow
def test_four_shadows_trained_as_ray_tasks_on_loopback_match_the_local_executor(tiny_run, tmp_path):
    work = tmp_path / "repo"
    run = clone_run(tiny_run, work)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["shadows"].update(count=4)  # tiny profile: blocks of 2, so two Ray tasks of two shadows
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    local = run(sys.executable, "-m", "remi", "run")
    assert local.returncode == 0, local.stderr[-3000:]
    local_files = _shadow_files(work)
    assert len(local_files) >= 4 * 3  # model, outputs and fingerprint per shadow

    for shadow in (work / "models" / "shadows").glob("shadow_*"):
        shutil.rmtree(shadow)
    daemons_before = _ray_daemons()
    # A network namespace with only loopback: Ray binds every interface and advertises the host's
    # address, so nothing it opens can be reached from, or talk to, anything but this namespace.
    in_loopback_namespace = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$@"']
    result = subprocess.run([*in_loopback_namespace, sys.executable, "-m", "remi", "run"], cwd=work,
                            env=run.env | {"REMI_EXECUTOR": "ray"},  # type: ignore[attr-defined]
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert _ray_daemons() <= daemons_before, "the stage left its Ray instance running"

    # Same files, so DVC sees the same shadows and nothing downstream re-runs.
    assert _shadow_files(work) == local_files
    assert _ran(result) <= {"check_params", "train_shadows"} and "train_shadows" in _ran(result)
    metrics = json.loads((work / "metrics" / "train_shadows.json").read_text())
    assert (metrics["shadows_trained"], metrics["shadows_reused"]) == (4, 0)
    assert "trained (ray)" in result.stderr
    assert os.environ.get("REMI_THREADS")  # the tasks' thread count, as the local run's (conftest)


FAILING_TASK = """
import time
from remi.errors import UserError
from remi.runtime.executors import map_in_order

def square_unless_two(item):
    if item == 2:
        raise UserError("item 2 is refused")
    return item * item

results = []
try:
    for result in map_in_order(square_unless_two, [0, 1, 2, 3]):
        results.append(result)
except UserError as error:
    print("results", results, "error", error, flush=True)
"""


@pytest.mark.slow
def test_a_failing_ray_task_stops_with_its_own_error_after_the_results_before_it():
    daemons_before = _ray_daemons()
    result = subprocess.run(["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
                             sys.executable, "-c", FAILING_TASK],
                            env=os.environ | {"REMI_EXECUTOR": "ray"}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # The items before the failing one arrive (the stage saves them), then the task's own exception.
    assert "results [0, 1] error item 2 is refused" in result.stdout
    assert _ray_daemons() <= daemons_before, "the Ray instance was left running after the failure"
