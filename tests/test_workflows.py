"""The CI/CD workflows, validated offline (GitHub's workflow schema, zizmor's security audit), and
kept thin: their steps are the commands the tests run."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

WORKFLOWS = sorted((REPO / ".github/workflows").glob("*.yml"))
TOOLS = Path(sys.executable).parent
# Every `run:` line of every workflow, each exercised by a test: setup by CI itself (`make test`
# sets up the same way), the job by tests/test_cycle.py, the pull-request script there too.
ALLOWED_RUN_LINES = ("make setup", "code=0", ".venv/bin/remi cycle --wait 600 --shared-state || code=$?",
                     'echo "code=$code" >> "$GITHUB_OUTPUT"', 'scripts/cycle_pr.sh "$CYCLE_CODE"',
                     'test "$CYCLE_CODE" = 0 || test "$CYCLE_CODE" = 3')


def test_there_is_a_scheduled_and_a_gpu_workflow():
    assert {w.name for w in WORKFLOWS} == {"reunlearn.yml", "reunlearn-gpu.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_the_workflow_matches_githubs_schema(workflow):
    result = subprocess.run([TOOLS / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", workflow],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_offline():
    result = subprocess.run([TOOLS / "zizmor", "--offline", REPO / ".github/workflows"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "No findings" in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_the_steps_are_the_commands_the_tests_run(workflow):
    spec = yaml.safe_load(workflow.read_text())
    job = spec["jobs"]["cycle"]
    assert job["timeout-minutes"] <= 120 and spec["concurrency"]["group"] == "reunlearn"
    assert spec["permissions"] == {} and set(job["permissions"]) == {"contents", "pull-requests"}
    lines = [line.strip() for step in job["steps"] if "run" in step for line in step["run"].splitlines()]
    assert lines and all(line in ALLOWED_RUN_LINES for line in lines), lines
    pins = [step["uses"].partition("@")[2] for step in job["steps"] if "uses" in step]
    assert pins and all(len(pin) == 40 for pin in pins)  # actions pinned to a commit, not a movable tag
