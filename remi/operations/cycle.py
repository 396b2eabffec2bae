"""The re-unlearning job a scheduler calls (`remi cycle`, `make reunlearn`): pull the shared state,
take every new request, run the pipeline (DVC re-runs only what the new forget set touches), let the
gate decide, push the state, and record each request's outcome in the ledger. With params
`cycle.sequential` each cycle starts from the model released last (remi/operations/sequential.py), and
the gate may release the retrained model instead (compaction: remi/pipeline/compaction.py).

Exit codes (docs/operations.md):
    0  released: a model honouring every pending request is the registry's @candidate (the gate's
       model, or with compaction the retrained one)
    2  a user error (params, a tampered ledger, ...): the message says what to fix
    3  nothing to do: no new or pending request
    4  some requests were rejected (reports in data/rejected/); the valid ones went on and were released
    5  the gate refused the model (and no compaction released the retrained one): the pending requests
       stay pending for the next cycle
    6  infrastructure: the pipeline failed before the gate or the pull failed (nothing recorded), or the
       push failed after the outcome was recorded (the next cycle pushes again)
    7  another cycle is running (see --wait)
"""

import sys
import time
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from remi.data.datasets import load_dataset
from remi.data.splits import make_splits
from remi.errors import UserError
from remi.networks import MODEL_FILE
from remi.operations.dvc_commands import default_remote, dvc
from remi.operations.intake import INBOX_DIR, cancel_request, ingest_inbox
from remi.operations.ledger import LEDGER_PATH, PENDING, head_sha256, locked, now, read_events, request_states
from remi.operations.sequential import InfrastructureError, prepare_starting_model
from remi.pipeline import tracking
from remi.pipeline.layout import metrics_path, split_path, unlearned_dir
from remi.pipeline.params import load_params
from remi.pipeline.runner import run_pipeline
from remi.runtime.files import file_md5, read_json
from remi.runtime.locks import LockTimeout, file_lock

CYCLE_LOCK = Path(".remi-cycle.lock")


@dataclass(frozen=True)
class Release:
    """What the gate released (metrics/gate.json)."""

    version: int
    method: str
    compaction: str | None  # why the retrained model was released instead, if it was

    @classmethod
    def from_gate(cls, gate: dict[str, Any], gate_method: str) -> "Release | None":
        if "registered_version" not in gate:
            return None
        return cls(int(gate["registered_version"]), gate.get("released_method", gate_method), gate.get("compaction"))


class Outcome(IntEnum):
    RELEASED = 0
    NOTHING_TO_DO = 3
    REJECTED = 4
    GATE_FAILED = 5
    INFRASTRUCTURE = 6
    BUSY = 7


def _pending(ledger: Path) -> list[str]:
    return sorted(r for r, s in request_states(read_events(ledger)).items() if s.state in PENDING)


def _gate_outcome(pipeline_code: int, started: float) -> dict | None:
    """gate.json if it speaks for this run (the pipeline finished, or the gate itself refused)."""
    gate = metrics_path("gate")
    if not gate.exists() or (pipeline_code != 0 and gate.stat().st_mtime < started):
        return None
    return read_json(gate)


def _record(ledger: Path, pending: list[str], release: Release | None, registered_model: str) -> None:
    """Each pending request's outcome, if this run's forget set holds it (a request cancelled while the
    pipeline ran, or whose file a crash removed, is not recorded as honoured)."""
    forget_md5 = file_md5(split_path("forget"))
    facts = {"forget_md5": forget_md5, "dvc_lock_md5": file_md5(Path("dvc.lock"))}
    model_md5 = file_md5(unlearned_dir(release.method) / MODEL_FILE) if release else None
    in_forget_set = set(read_json(split_path("forget")).get("requests", []))
    with locked(ledger) as book:
        for request in pending:
            if request not in in_forget_set or book.state(request) not in PENDING:
                continue
            if book.state(request) != "applied":
                book.append(request, "applied", **facts)
            if release is None:
                book.append(request, "gate_failed", **facts)
                continue
            latency = (now() - book.states[request].received).total_seconds() / 86400
            book.append(request, "released", model=registered_model, alias="candidate",
                        model_version=release.version, method=release.method, model_md5=model_md5,
                        forget_md5=forget_md5,
                        latency_days=round(latency, 4),
                        **({"compaction": release.compaction} if release.compaction else {}))


def _log_cycle(counts: dict[str, float], ledger: Path) -> None:
    """A `cycle` run in MLflow; a tracking failure is reported, not fatal: the ledger already holds
    the outcome, and it is the record of truth."""
    latencies = [e["detail"]["latency_days"] for e in read_events(ledger) if e["event"] == "released"]
    tags = {"stage": "cycle", "role": "cycle", "ledger_head_sha256": head_sha256(ledger), **tracking.code_identity()}
    try:
        mlflow = tracking.configured_mlflow()
        with mlflow.start_run(run_name="cycle", tags=tags):
            mlflow.log_metrics(counts | ({"erasure_latency_days_max": max(latencies)} if latencies else {}))
            mlflow.log_artifact(str(ledger))
    except Exception as error:  # any failure of the tracking server or its client
        print(f"WARNING: the cycle was not logged to MLflow ({type(error).__name__}: {str(error)[:200]}); "
              "the ledger holds the outcome.", file=sys.stderr)


def _cycle(ledger: Path) -> Outcome:
    params = load_params()
    if params.forget.mode != "requests":
        raise UserError("The re-unlearning job needs forget.mode: requests in params.yaml (the forget set is "
                        "the union of the accepted requests).")
    remote = default_remote()
    if remote and dvc("pull", "--run-cache", "--allow-missing") != 0:
        print(f"dvc pull from remote {remote!r} failed; nothing was changed.", file=sys.stderr)
        return Outcome.INFRASTRUCTURE
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    rejected = ingest_inbox(dataset, make_splits(len(dataset), params.splits)["target_train"], ledger)
    for request in rejected:
        print(f"Rejected {request}: its report is in data/rejected/")
    pending = _pending(ledger)
    if not pending:
        print("Nothing to do: no new or pending erasure request" + (f" ({INBOX_DIR} is empty)." if not rejected
                                                                    else " besides the rejected ones."))
        if remote and dvc("push", "--run-cache") != 0:  # completes a push an earlier cycle did not finish
            return Outcome.INFRASTRUCTURE
        return Outcome.REJECTED if rejected else Outcome.NOTHING_TO_DO
    print(f"{len(pending)} pending request(s): {', '.join(pending)}", flush=True)
    try:
        start = prepare_starting_model(params, ledger)
    except InfrastructureError as error:
        print(f"{error}; nothing was recorded.", file=sys.stderr)
        return Outcome.INFRASTRUCTURE
    started = time.time()
    gate = _gate_outcome(run_pipeline([]), started)
    if gate is None:
        print("The pipeline failed before the gate; the requests stay pending.", file=sys.stderr)
        return Outcome.INFRASTRUCTURE
    release = Release.from_gate(gate, params.gate.method)
    _record(ledger, pending, release, params.gate.registered_model)
    if remote and dvc("push", "--run-cache") != 0:
        print(f"dvc push to remote {remote!r} failed; run `dvc push --run-cache` when it is back.", file=sys.stderr)
        return Outcome.INFRASTRUCTURE
    _log_cycle({"requests_pending": len(pending), "requests_rejected": len(rejected),
                "released": float(release is not None), "compaction": float(bool(release and release.compaction)),
                "start_release_version": float(start.registered_version or 0),
                "releases_since_retrain": float(start.releases_since_retrain)}, ledger)
    if release is None:
        return Outcome.GATE_FAILED
    return Outcome.REJECTED if rejected else Outcome.RELEASED


def cancel_requests(requests: list[str], ledger: Path = LEDGER_PATH) -> int:
    """Cancel pending requests between cycles, under the job lock: a running cycle may already be applying
    them, and its release would honour a request the ledger calls cancelled. 0, or BUSY while a cycle runs."""
    try:
        with file_lock(CYCLE_LOCK, 0, "remi request cancel"):
            for request in requests:
                cancel_request(request, ledger)
                print(f"Cancelled {request}.")
    except LockTimeout:
        print(f"A re-unlearning cycle holds {CYCLE_LOCK}; nothing was cancelled. Cancel after it has finished.",
              file=sys.stderr)
        return int(Outcome.BUSY)
    return 0


def run_cycle(wait_seconds: float = 0, ledger: Path = LEDGER_PATH) -> int:
    """One cycle under the job lock; its Outcome as the exit code."""
    try:
        with file_lock(CYCLE_LOCK, wait_seconds, "the re-unlearning job"):
            return int(_cycle(ledger))
    except LockTimeout:
        print(f"Another re-unlearning cycle holds {CYCLE_LOCK}; this one did nothing. Retry later or pass "
              "--wait SECONDS.", file=sys.stderr)
        return int(Outcome.BUSY)
