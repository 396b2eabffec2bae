"""The re-unlearning job on the tiny profile, cycle after cycle, as a scheduler would run it, against
the loopback team stack (PostgreSQL-backed MLflow with basic auth, artifacts proxied to S3, the S3
DVC remote; moto plays S3): new requests released, an empty cycle doing nothing, an invalid request
rejected while the valid one goes on from the model released before (sequential unlearning), a job
killed during unlearning finished by the next ones with no request lost or applied twice (the first of them
losing its remote before the push, so recording nothing) and releasing the retrained model because
compaction is due (cycle.compact_every: 3), a tampered ledger, the pull
request script, purge (superseded versions, then the original target, after which a cycle still
runs), and a fresh clone that pulls everything with nothing left to run."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from remi.data.datasets import load_dataset
from remi.data.splits import make_splits
from remi.operations.cycle import Outcome
from remi.operations.ledger import read_events, request_states
from remi.pipeline.params import load_params
from remi.pipeline.release import honoured_requests
from tests.conftest import REMI, pipeline_copy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A tiny-profile copy whose forget set is the union of the accepted requests, each cycle starting
    from the last release and every third release retrained from scratch, working against the team
    stack that `remi stack start` runs on 127.0.0.1 (PostgreSQL-backed MLflow with basic auth, its
    artifacts proxied to S3; the S3 DVC remote). Nothing run yet; the stack is stopped (and checked
    gone) afterwards."""
    work = tmp_path_factory.mktemp("cycle") / "repo"
    local = pipeline_copy(work, "profiles/tiny.yaml")
    (work / "requests_mode.yaml").write_text("forget:\n  mode: requests\ncycle:\n  sequential: true\n"
                                             "  compact_every: 3\n")
    assert local(REMI, "profile", "requests_mode.yaml").returncode == 0
    started = local(REMI, "stack", "start")
    assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
    state = json.loads((work / ".stack/stack.json").read_text())
    try:
        for secret in ("stack.json", "env", "basic_auth.ini"):
            assert (work / ".stack" / secret).stat().st_mode & 0o077 == 0, secret  # they hold passwords
        client_env = dict(line.removeprefix("export ").split("=", 1)
                          for line in (work / ".stack/env").read_text().splitlines())
        run = _runner(work, local.env | client_env)
        for command in (("remote", "add", "-d", "shared", "s3://remi/dvc"),
                        ("remote", "modify", "shared", "endpointurl", state["s3_endpoint"]),
                        # A team seeds its remote once, from the machine that has the data (this copy's raw
                        # files were copied in, never cached).
                        ("commit", "--force", *(str(p.relative_to(work)) for p in (work / "data/raw").glob("*.dvc"))),
                        ("push", "--run-cache")):
            seeded = run(sys.executable, "-m", "dvc", *command)
            assert seeded.returncode == 0, seeded.stdout[-2000:] + seeded.stderr[-2000:]
        params = load_params(work / "params.yaml")
        dataset = load_dataset(params.data.dataset, work / params.data.raw_dir)
        members = make_splits(len(dataset), params.splits)["target_train"].tolist()
        yield Job(work, run, dataset.digest, members, state, client_env)
    finally:
        assert local(REMI, "stack", "stop").returncode == 0
        for pid in (state["mlflow_pid"], state["s3_pid"]):
            with pytest.raises(ProcessLookupError):
                os.killpg(pid, 0)
        assert not os.path.exists(state["postgres_dir"])


class Job(NamedTuple):
    work: Path
    run: Any  # runs a command in `work` with the stack's client environment
    digest: str
    members: list[int]
    stack: dict[str, Any]  # .stack/stack.json: URLs, process ids
    client_env: dict[str, str]  # .stack/env: the MLflow URI and CI user, the S3 keys


def _runner(work, env):
    def run(*command):
        return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=900)

    run.env = env
    return run


@pytest.fixture
def as_ci_user(job, monkeypatch):
    """This process talks to the stack's MLflow as the CI user."""
    for key, value in job.client_env.items():
        if key.startswith("MLFLOW_TRACKING_"):
            monkeypatch.setenv(key, value)
    return job


def _s3_keys(job, prefix):
    import boto3

    s3 = boto3.client("s3", endpoint_url=job.stack["s3_endpoint"], region_name="us-east-1",
                      aws_access_key_id="stack", aws_secret_access_key="stack")
    keys, token = [], {}
    for _ in range(100):  # bounded: 100,000 keys is far more than a tiny run writes
        page = s3.list_objects_v2(Bucket="remi", Prefix=prefix, MaxKeys=1000, **token)
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return keys
        token = {"ContinuationToken": page["NextContinuationToken"]}
    raise AssertionError("more S3 keys than expected")


def _envelope(work, digest, sample_ids):
    request = str(uuid.uuid4())
    body = {"subject_request_id": request, "type": "erasure", "submitted_time": "2026-11-26T08:00:00Z",
            "dataset": "fashion_mnist", "dataset_digest": digest, "sample_ids": sample_ids}
    path = work / f"{request}.envelope.json"
    path.write_text(json.dumps(body))
    return request, path.name


def _states(work):
    return {r: s.state for r, s in request_states(read_events(work / "data/ledger.jsonl")).items()}


def _events(work, request):
    return [e["event"] for e in read_events(work / "data/ledger.jsonl") if e["request"] == request]


def _released(work, request):
    return next(e["detail"] for e in read_events(work / "data/ledger.jsonl")
                if e["request"] == request and e["event"] == "released")


def _unlearn_metrics(work, method="remi"):
    return json.loads((work / f"metrics/unlearn/{method}.json").read_text())


def test_a_cycle_without_requests_does_nothing(job):
    work, run, *_ = job
    result = run(REMI, "cycle")
    assert result.returncode == Outcome.NOTHING_TO_DO and "Nothing to do" in result.stdout
    assert "Running stage" not in result.stdout and not (work / "models/target/model.pt").exists()


def test_new_requests_are_released_and_a_second_cycle_has_nothing_to_do(job):
    work, run, digest, members, *_ = job
    first, first_file = _envelope(work, digest, members[:20])
    second, second_file = _envelope(work, digest, members[20:50])
    assert run(REMI, "request", "add", first_file, second_file).returncode == 0
    result = run(REMI, "cycle", "--wait", "600", "--shared-state")  # as the workflows run it: the stack is shared
    assert result.returncode == Outcome.RELEASED, result.stdout[-3000:] + result.stderr[-3000:]
    assert _states(work) == {first: "released", second: "released"}
    assert _events(work, first) == ["received", "validated", "applied", "released"]
    forget = json.loads((work / "data/splits/forget.json").read_text())["sample_ids"]
    assert sorted(forget) == sorted(members[:50])
    assert _released(work, first)["method"] == "remi" and "compaction" not in _released(work, first)
    report = (work / "reports/audit/audit.html").read_text()  # in git: no copy of what was erased
    assert "By ID only" in report and 'alt="sample ' not in report
    started = _unlearn_metrics(work)  # from the target, the whole forget set
    assert (started["start_release_version"], started["forgotten_samples"]) == (0, 50)
    status = run(REMI, "request", "status").stdout
    assert first in status and "released" in status
    again = run(REMI, "cycle")
    assert again.returncode == Outcome.NOTHING_TO_DO and "Running stage" not in again.stdout


def test_an_invalid_request_is_rejected_and_the_valid_one_goes_on(job):
    work, run, digest, members, *_ = job
    valid, valid_file = _envelope(work, digest, members[50:60])
    invalid, invalid_file = _envelope(work, digest, [members[60], 10**9])  # no sample has that ID
    assert run(REMI, "request", "add", valid_file, invalid_file).returncode == 0
    result = run(REMI, "cycle")
    assert result.returncode == Outcome.REJECTED, result.stdout[-3000:] + result.stderr[-3000:]
    assert _states(work)[valid] == "released" and _states(work)[invalid] == "rejected"
    report = (work / "data/rejected" / f"{invalid}.report.txt").read_text()
    assert "requests can only name members of the target's training set" in report
    assert _released(work, valid)["model_version"] == 2
    # Sequential: started from cycle 1's release, which honours 50 samples, and forgot only the 10 new ones;
    # retraining and the audit used the cumulative forget set.
    manifest = json.loads((work / "models/base/release.json").read_text())
    assert manifest["registered_version"] == 1 and sorted(manifest["honoured_ids"]) == sorted(members[:50])
    started = _unlearn_metrics(work)
    assert (started["start_release_version"], started["forgotten_samples"]) == (1, 10)
    assert len(json.loads((work / "data/splits/forget.json").read_text())["sample_ids"]) == 60
    audit = (work / "reports/audit/audit.md").read_text()
    assert "released version 1 (remi), which honours 50 forget samples" in audit
    assert "- erasure requests in the forget set: 3, received " in audit and "has waited" in audit


def test_a_job_killed_while_unlearning_is_finished_by_the_next_cycle(job):
    work, run, digest, members, *_ = job
    request, path = _envelope(work, digest, members[70:80])
    assert run(REMI, "request", "add", path).returncode == 0
    log = work / "killed.log"
    with log.open("w") as out:
        job_process = subprocess.Popen([REMI, "cycle"], cwd=work, env=run.env, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    while "Running stage 'unlearn@" not in log.read_text() and time.monotonic() < deadline:
        assert job_process.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    os.killpg(job_process.pid, signal.SIGKILL)
    job_process.wait()
    assert _states(work)[request] == "applied"  # recorded before the pipeline ran: cancel refuses it now
    # The next cycle finishes the pipeline, but the remote goes away before its push (an S3 outage): on a
    # throw-away runner the outputs would go with it, so no outcome may be recorded.
    with log.open("w") as out:
        job_process = subprocess.Popen([REMI, "cycle"], cwd=work, env=run.env, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
    while "Running stage" not in log.read_text() and time.monotonic() < deadline + 600:  # past its pull
        assert job_process.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    outage = ("remote", "modify", "--local", "shared", "endpointurl", "http://127.0.0.1:9")  # nothing listens there
    assert run(sys.executable, "-m", "dvc", *outage).returncode == 0
    try:
        assert job_process.wait(timeout=900) == Outcome.INFRASTRUCTURE, log.read_text()[-3000:]
    finally:
        (work / ".dvc/config.local").unlink()
    assert "the requests stay applied" in log.read_text() and _states(work)[request] == "applied"
    result = run(REMI, "cycle")
    assert result.returncode == Outcome.RELEASED, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Running stage" not in result.stdout  # the outputs of the cycle before, pushed now, then recorded
    assert _events(work, request) == ["received", "validated", "applied", "released"]
    assert run(REMI, "request", "verify").returncode == 0
    # The third release since the target: compaction released the model retrained from scratch.
    released = _released(work, request)
    assert released["method"] == "retrain" and "every 3 releases" in released["compaction"]
    assert released["model_version"] == 3  # the gate registered the retrained model, not ReMI's


def test_a_tampered_ledger_stops_every_command_that_reads_it(job):
    work, run, *_ = job
    ledger = work / "data/ledger.jsonl"
    original = ledger.read_text()
    lines = original.splitlines(keepends=True)
    lines[0] = lines[0].replace("2026-11-26T08:00:00", "2026-11-01T08:00:00")
    ledger.write_text("".join(lines))
    try:
        for command in (("request", "verify"), ("request", "status"), ("cycle",)):
            result = run(REMI, *command)
            assert result.returncode == 2 and "line 2 does not follow line 1" in result.stderr, command
    finally:
        ledger.write_text(original)


def test_the_pull_request_script_commits_what_the_cycle_changed(job, tmp_path):
    """scripts/cycle_pr.sh as the workflow runs it, against a local bare remote and a stand-in gh."""
    work, run, *_ = job
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", origin], check=True)
    assert run("git", "remote", "add", "origin", str(origin)).returncode == 0
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "gh").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "gh.calls"}\n')
    (fake_bin / "gh").chmod(0o755)
    env = run.env | {"PATH": f"{fake_bin}:{run.env['PATH']}"}
    result = subprocess.run(["scripts/cycle_pr.sh", "0"], cwd=work, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    branch = subprocess.run(["git", "branch", "--show-current"], cwd=work, capture_output=True, text=True).stdout
    pushed = subprocess.run(["git", "--git-dir", origin, "show", "--name-only", branch.strip()], capture_output=True,
                            text=True).stdout
    assert "data/ledger.jsonl" in pushed and "dvc.lock" in pushed and "reports/audit/audit.md" in pushed
    assert "models/base/release.json" in pushed and "models/base/weights.dvc" in pushed
    assert "reports/audit/audit.html" in pushed and "reports/audit/roc_lira.csv" in pushed
    # Every tracked file the cycles changed went into the branch; what is left is this test's own set-up.
    left = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=work, capture_output=True,
                          text=True).stdout.split("\n")
    assert {line[3:] for line in left if line} <= {"params.yaml", ".dvc/config", *(
        str(p.relative_to(work)) for p in (work / "data/raw").glob("*.dvc"))}, left
    calls = (tmp_path / "gh.calls").read_text()
    assert "auth setup-git" in calls and f"pr create --head {branch.strip()}" in calls


def test_the_team_stack_refuses_anonymous_requests(job):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{job.stack['mlflow_url']}/api/2.0/mlflow/experiments/search?max_results=1",
                               timeout=30)
    assert refused.value.code == 401


def test_the_ci_user_released_each_version_on_the_team_server(as_ci_user):
    from mlflow import MlflowClient

    job = as_ci_user
    name = load_params(job.work / "params.yaml").gate.registered_model
    registry = MlflowClient(job.stack["mlflow_url"])
    candidate = registry.get_model_version_by_alias(name, "candidate")
    assert str(candidate.version) == "3" and candidate.tags["method"] == "retrain" and candidate.tags["compaction"]
    assert _s3_keys(job, "dvc/") and _s3_keys(job, "mlflow/")  # models in the DVC remote, artifacts proxied
    released = [e for e in read_events(job.work / "data/ledger.jsonl") if e["event"] == "released"]
    # The registry's forward-only check reads the ids each version honours: every request released so far.
    assert honoured_requests(candidate.tags) == {e["request"] for e in released}
    # Each cycle's MLflow run reports the largest latency among the requests it released, not of all time.
    by_version: dict[int, list[float]] = {}
    for event in released:
        by_version.setdefault(event["detail"]["model_version"], []).append(event["detail"]["latency_days"])
    experiments = [e.experiment_id for e in registry.search_experiments()]
    cycles = registry.search_runs(experiments, "tags.stage = 'cycle'", order_by=["attributes.start_time ASC"])
    assert [r.data.metrics["erasure_latency_days_max"] for r in cycles] == [max(by_version[v]) for v in (1, 2, 3)]


def test_purge_deletes_superseded_models_and_keeps_the_released_one(as_ci_user):
    import mlflow

    job = as_ci_user
    work, run, *_ = job
    name = load_params(work / "params.yaml").gate.registered_model
    client = mlflow.MlflowClient(job.stack["mlflow_url"])
    # The server proxies mlflow-artifacts:/<path> to s3://remi/mlflow/<path>.
    prefixes = {str(v.version): "mlflow/" + client.get_model_version_download_uri(name, v.version)
                .removeprefix("mlflow-artifacts:/") for v in client.search_model_versions(f"name='{name}'")}
    assert sorted(prefixes) == ["1", "2", "3"] and all(_s3_keys(job, p) for p in prefixes.values())
    # The models every `unlearn` run logged: the earlier cycles' go (both methods', registered or not), the
    # released version's and the workspace's stay.
    experiment = client.get_experiment_by_name("remi-unlearning")
    unlearned = [m for m in client.search_logged_models([experiment.experiment_id])
                 if m.name in ("remi_model", "retrain_model")]
    keep_runs = {client.get_model_version_by_alias(name, "candidate").run_id} | {
        json.loads((work / f"lineage/unlearn/{method}.json").read_text())["run_id"] for method in ("remi", "retrain")}
    kept, gone = ([m for m in unlearned if (m.source_run_id in keep_runs) == keep] for keep in (True, False))
    assert len(kept) == 2 and len(gone) >= 4  # two cycles before the released one, two methods each

    def logged_prefix(model):
        return "mlflow/" + model.artifact_location.removeprefix("mlflow-artifacts:/")

    assert all(_s3_keys(job, logged_prefix(m)) for m in kept + gone)
    cache = sum(1 for _ in (work / ".dvc/cache").rglob("*") if _.is_file())
    remote = len(_s3_keys(job, "dvc/"))
    dry = run(REMI, "purge")
    assert dry.returncode == 0 and "dry run" in dry.stdout and "version 1 (run" in dry.stdout
    assert "logged model retrain_model (run" in dry.stdout
    assert all(_s3_keys(job, p) for p in prefixes.values())
    applied = run(REMI, "purge", "--apply")
    assert applied.returncode == 0, applied.stdout[-2000:] + applied.stderr[-2000:]
    for version in ("1", "2"):
        assert not _s3_keys(job, prefixes[version])
        assert "superseded by version 3" in client.get_model_version(name, version).tags["purged_reason"]
    for model in gone:
        assert not _s3_keys(job, logged_prefix(model))
        assert "superseded by version 3" in client.get_logged_model(model.model_id).tags["purged_reason"]
    assert all(_s3_keys(job, logged_prefix(m)) for m in kept)
    assert mlflow.pytorch.load_model(f"models:/{name}@candidate") is not None  # the released model loads
    assert sum(1 for _ in (work / ".dvc/cache").rglob("*") if _.is_file()) < cache
    assert len(_s3_keys(job, "dvc/")) < remote
    status = run(sys.executable, "-m", "dvc", "status", "dvc.yaml")  # every pipeline output still cached
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout


def test_purge_target_deletes_the_original_target_and_the_next_cycle_runs_without_it(as_ci_user):
    import mlflow

    job = as_ci_user
    work, run, digest, members, *_ = job
    lock = yaml.safe_load((work / "dvc.lock").read_text())
    target_md5 = next(o["md5"] for o in lock["stages"]["train_target"]["outs"] if o["path"] == "models/target")
    objects = {target_md5} | {e["md5"] for e in json.loads(_cache_file(work, target_md5).read_text())}

    def kept(oid):
        return _cache_file(work, oid).exists(), bool(_s3_keys(job, f"dvc/files/md5/{oid[:2]}/{oid[2:]}"))

    assert all(kept(oid) == (True, True) for oid in objects)
    client = mlflow.MlflowClient(job.stack["mlflow_url"])
    experiment = client.get_experiment_by_name("remi-unlearning")
    logged = client.search_logged_models([experiment.experiment_id], "name = 'target_model'")
    prefixes = ["mlflow/" + m.artifact_location.removeprefix("mlflow-artifacts:/") for m in logged]
    assert logged and all(_s3_keys(job, p) for p in prefixes)
    dry = run(REMI, "purge", "--target")
    assert dry.returncode == 0 and "dry run" in dry.stdout, dry.stdout + dry.stderr
    assert "the original target (models/target" in dry.stdout and "local cache: 2 object(s)" in dry.stdout
    assert all(kept(oid) == (True, True) for oid in objects) and (work / "models/target/model.pt").exists()
    applied = run(REMI, "purge", "--target", "--apply")
    assert applied.returncode == 0, applied.stdout[-2000:] + applied.stderr[-2000:]
    assert all(kept(oid) == (False, False) for oid in objects) and not (work / "models/target").exists()
    assert not any(_s3_keys(job, p) for p in prefixes)
    assert all("purged_reason" in client.get_logged_model(m.model_id).tags for m in logged)
    name = load_params(work / "params.yaml").gate.registered_model
    assert "original_target_purged_time" in client.get_registered_model(name).tags
    assert mlflow.pytorch.load_model(f"models:/{name}@candidate") is not None  # the released model loads
    assert yaml.safe_load((work / "dvc.yaml").read_text())["stages"]["train_target"]["frozen"] is True
    # A second run (or one after a run cut short) reads what to delete from the record: the listing is gone.
    assert set(json.loads((work / "models/target.purged.json").read_text())["objects"]) == objects
    again = run(REMI, "purge", "--target", "--apply")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "local cache: 0 object(s)" in again.stdout and "remote: 0 object(s)" in again.stdout
    # The next cycle starts from the last release (the compacted version 3) and never re-creates the target.
    request, path = _envelope(work, digest, members[80:85])
    assert run(REMI, "request", "add", path).returncode == 0
    result = run(REMI, "cycle")
    assert result.returncode in (Outcome.RELEASED, Outcome.GATE_FAILED), result.stdout[-3000:] + result.stderr[-3000:]
    assert "Running stage 'unlearn@remi'" in result.stdout and "Running stage 'train_target'" not in result.stdout
    assert _unlearn_metrics(work)["start_release_version"] == 3 and not (work / "models/target").exists()
    assert "released version 3 (retrain)" in (work / "reports/audit/audit.md").read_text()
    assert _states(work)[request] in ("released", "gate_failed") and run(REMI, "request", "verify").returncode == 0


def _cache_file(work, oid):
    return work / ".dvc/cache/files/md5" / oid[:2] / oid[2:]


def test_a_fresh_clone_pulls_everything_with_nothing_left_to_run(job, tmp_path):
    work, run, *_ = job
    for command in (("git", "add", "-A"), ("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")):
        assert run(*command).returncode == 0
    clone = tmp_path / "clone"
    assert run("git", "clone", "-q", str(work), str(clone)).returncode == 0
    in_clone = _runner(clone, run.env)
    # The purged target is missing on purpose; everything else is pulled.
    pulled = in_clone(sys.executable, "-m", "dvc", "pull", "--allow-missing")
    assert pulled.returncode == 0, pulled.stdout[-2000:] + pulled.stderr[-2000:]
    status = in_clone(sys.executable, "-m", "dvc", "repro", "--allow-missing", "--dry")  # what `remi run` runs
    assert status.returncode == 0 and "Running stage" not in status.stdout, status.stdout
    assert (clone / "models/unlearned/remi/model.pt").exists() and not (clone / "models/target").exists()
    assert (clone / "models/base/weights/model.pt").exists()  # the last cycle's starting model
