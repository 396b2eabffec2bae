"""The CI/CD workflows, validated offline (GitHub's workflow schema, zizmor's security audit), and
kept thin: their steps are the commands the tests run."""

import shutil
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
ALLOWED_RUN_LINES = ("make setup", "code=0",
                     "timeout --kill-after=120 75m .venv/bin/remi cycle --wait 600 --shared-state || code=$?",
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
    assert job["if"] == "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"
    lines = [line.strip() for step in job["steps"] if "run" in step for line in step["run"].splitlines()]
    assert lines and all(line in ALLOWED_RUN_LINES for line in lines), lines
    pins = [step["uses"].partition("@")[2] for step in job["steps"] if "uses" in step]
    assert pins and all(len(pin) == 40 for pin in pins)  # actions pinned to a commit, not a movable tag


def test_the_pull_request_script_never_commits_a_dvc_lock_cut_short(tmp_path):
    """A job cancelled or out of time may be killed while DVC rewrites dvc.lock: its ledger must still come back
    (a model honouring its requests may be registered), its lock and the outputs it names must not."""
    work, origin = tmp_path / "work", tmp_path / "origin.git"
    for name in ("scripts/cycle_pr.sh", "bin/python", "dvc.yaml", "dvc.lock", "metrics/audit.json"):
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, work / name)
    (work / "data").mkdir()
    (work / "data/ledger.jsonl").write_text("")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "gh").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "gh.calls"}\n')
    (fake_bin / "gh").chmod(0o755)
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "HOME": str(tmp_path), "REMI_PYTHON": sys.executable}

    def git(*arguments):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *arguments], cwd=work, env=env,
                              capture_output=True, text=True, check=True).stdout

    subprocess.run(["git", "init", "-q", "--bare", origin], check=True)
    for arguments in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-qm", "main"),
                      ("remote", "add", "origin", str(origin))):
        git(*arguments)
    (work / "data/ledger.jsonl").write_text('{"event": "applied"}\n')
    (work / "metrics/audit.json").write_text("{}")
    complete = (work / "dvc.lock").read_text()
    (work / "dvc.lock").write_text(complete[:len(complete) // 2])
    cut = subprocess.run(["scripts/cycle_pr.sh", "124"], cwd=work, env=env, capture_output=True, text=True,
                         timeout=120)
    assert cut.returncode == 0 and "dvc.lock was cut short" in cut.stderr, cut.stdout + cut.stderr
    committed = git("show", "--name-only", "--format=", "HEAD").split()
    assert committed == ["data/ledger.jsonl"]
    assert "cut short" in (tmp_path / "gh.calls").read_text()  # the pull request says what it leaves out
    git("switch", "-q", "main")  # the next cycle, on another runner: its lock is complete
    (work / "data/ledger.jsonl").write_text('{"event": "released"}\n')
    (work / "dvc.lock").write_text(complete.replace("md5: ", "md5:  ", 1))
    done = subprocess.run(["scripts/cycle_pr.sh", "0"], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(git("show", "--name-only", "--format=", "HEAD").split()) == {
        "data/ledger.jsonl", "dvc.lock", "metrics/audit.json"}
