"""The re-unlearning job a scheduler calls (`remi cycle`, `make reunlearn`): pull the shared state,
take every new request, run the pipeline (DVC re-runs only what the new forget set touches), let the
gate decide, push the state, and record each request's outcome in the ledger: only after the push, so a
`released` event never names outputs that another machine cannot pull. With params
`cycle.sequential` each cycle starts from the model released last (remi/operations/sequential.py), and
the gate may release the retrained model instead (compaction: remi/pipeline/compaction.py).

Exit codes (docs/operations.md):
    0  released: a model honouring every pending request is the registry's @candidate (the gate's
       model, or with compaction the retrained one)
    2  a user error (params, a tampered ledger, ...): the message says what to fix
    3  nothing to do: no new or pending request
    4  some requests were rejected (reports in data/rejected/); the valid ones went on and were released
    5  the gate refused the model (and no compaction released the retrained one), or the registry did (it
       would leave out a request that the current @candidate honours): the pending requests stay pending
       for the next cycle
    6  infrastructure: the pull failed or the registry could not say which version is @candidate (nothing
       recorded), the pipeline failed before the gate, or the push failed after it (the requests stay
       `applied`: the next cycle pushes, then records their outcome)
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
from remi.errors import UserError, first_few
from remi.networks import MODEL_FILE
from remi.operations.dvc_commands import default_remote, dvc
from remi.operations.intake import INBOX_DIR, cancel_request, ingest_inbox, stray_inbox_entries
from remi.operations.ledger import LEDGER_PATH, PENDING, head_sha256, locked, now, read_events, request_states
from remi.operations.sequential import InfrastructureError, prepare_starting_model
from remi.pipeline import tracking
from remi.pipeline.layout import metrics_path, split_path, unlearned_dir
from remi.pipeline.params import load_params
from remi.pipeline.release import ALIAS, RegistryUnreadable, candidate_requests
from remi.pipeline.runner import run_pipeline
from remi.runtime.files import file_md5, read_json
from remi.runtime.locks import LockTimeout, file_lock

CYCLE_LOCK = Path(".remi-cycle.lock")
LOCK_HOLDERS = "A re-unlearning cycle, `remi request cancel` or `remi purge`"  # whoever takes CYCLE_LOCK


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


def _record(ledger: Path, pending: list[str], release: Release | None, registered_model: str) -> list[float]:
    """Each pending request's outcome, if this run's forget set holds it (a request cancelled while the
    pipeline ran, or whose file a crash removed, is not recorded as honoured); the latencies, in days, of the
    requests this cycle released."""
    forget_md5 = file_md5(split_path("forget"))
    facts = {"forget_md5": forget_md5, "dvc_lock_md5": file_md5(Path("dvc.lock"))}
    model_md5 = file_md5(unlearned_dir(release.method) / MODEL_FILE) if release else None
    in_forget_set = set(read_json(split_path("forget")).get("requests", []))
    latencies = []
    with locked(ledger) as book:
        for request in pending:
            if request not in in_forget_set or book.state(request) != "applied":
                continue
            if release is None:
                book.append(request, "gate_failed", **facts)
                continue
            latency = round((now() - book.states[request].received).total_seconds() / 86400, 4)
            latencies.append(latency)
            book.append(request, "released", model=registered_model, alias="candidate",
                        model_version=release.version, method=release.method, model_md5=model_md5,
                        **facts, latency_days=latency,
                        **({"compaction": release.compaction} if release.compaction else {}))
    return latencies


def _mark_applied(ledger: Path, pending: list[str]) -> None:
    """`applied` before the pipeline runs, whose gate may register a model honouring the requests: a kill or
    a failure between that and `_record` leaves them `applied`, which `remi request cancel` refuses (the
    registry may already serve a model that honours them) until a cycle has recorded the outcome."""
    with locked(ledger) as book:
        for request in pending:
            if book.state(request) in ("validated", "gate_failed"):
                book.append(request, "applied")


def _log_cycle(counts: dict[str, float], ledger: Path, latencies: list[float]) -> None:
    """A `cycle` run in MLflow, with the largest latency of the requests it released (none: no such metric); a
    tracking failure is reported, not fatal: the ledger already holds the outcome, and it is the record of truth."""
    tags = {"stage": "cycle", "role": "cycle", "ledger_head_sha256": head_sha256(ledger), **tracking.code_identity()}
    try:
        mlflow = tracking.configured_mlflow()
        with mlflow.start_run(run_name="cycle", tags=tags):
            mlflow.log_metrics(counts | ({"erasure_latency_days_max": max(latencies)} if latencies else {}))
            mlflow.log_artifact(str(ledger))
    except Exception as error:  # any failure of the tracking server or its client
        print(f"WARNING: the cycle was not logged to MLflow ({type(error).__name__}: {str(error)[:200]}); "
              "the ledger holds the outcome.", file=sys.stderr)


def _check_ledger_follows_registry(ledger: Path, registered_model: str) -> None:
    """Stop before anything changes if the registry's candidate honours requests this ledger does not hold as
    accepted: the ledger is behind the registry (a cycle's ledger that never reached this checkout, such as a
    CI cycle's unmerged pull request, or a ledger reset). Going on would apply those requests again, or leave
    out ones the registry refuses to drop."""
    candidate = candidate_requests(tracking.tracking_uri(), registered_model)
    if candidate is None:
        return
    version, honoured = candidate
    accepted = {r for r, s in request_states(read_events(ledger)).items() if s.state in (*PENDING, "released")}
    unknown = sorted(honoured - accepted)
    if unknown:
        raise UserError(
            f"{registered_model}@{ALIAS} (version {version}, {tracking.tracking_uri()}) honours {len(unknown)} erasure "
            f"request(s) that {ledger} does not hold as accepted: {first_few(unknown)}. The ledger is behind the "
            "registry: merge the pull request of the cycle that released them (CI: branch "
            "reunlearn/<time>-<run id>), or restore the ledger that recorded them. Nothing was done.")


def _cycle(ledger: Path) -> Outcome:
    params = load_params()
    if params.forget.mode != "requests":
        raise UserError("The re-unlearning job needs forget.mode: requests in params.yaml (the forget set is "
                        "the union of the accepted requests).")
    remote = default_remote()
    if remote and dvc("pull", "--run-cache", "--allow-missing") != 0:
        print(f"dvc pull from remote {remote!r} failed; nothing was changed.", file=sys.stderr)
        return Outcome.INFRASTRUCTURE
    try:
        _check_ledger_follows_registry(ledger, params.gate.registered_model)
    except RegistryUnreadable as error:
        print(error, file=sys.stderr)
        return Outcome.INFRASTRUCTURE
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    rejected = ingest_inbox(dataset, make_splits(len(dataset), params.splits)["target_train"], ledger)
    for request in rejected:
        print(f"Rejected {request}: its report is in data/rejected/")
    strays = stray_inbox_entries()
    if strays:
        print(f"WARNING: {INBOX_DIR} holds {len(strays)} entr{'y' if len(strays) == 1 else 'ies'} not named like an "
              f"envelope, left alone: {first_few(strays)}. An envelope is <subject_request_id>.json (lower case); "
              "rename each once it is complete, or remove it.", file=sys.stderr)
    pending = _pending(ledger)
    if not pending:
        inbox = f" ({INBOX_DIR} is empty)." if not strays else f" ({INBOX_DIR} holds no envelope)."
        print("Nothing to do: no new or pending erasure request" + (inbox if not rejected
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
    _mark_applied(ledger, pending)
    started = time.time()
    gate = _gate_outcome(run_pipeline([]), started)
    if gate is None:
        print("The pipeline failed before the gate; the requests stay pending.", file=sys.stderr)
        return Outcome.INFRASTRUCTURE
    if "registry_refused" in gate:
        print(f"The registry refused the model: {gate['registry_refused']}", file=sys.stderr)
    release = Release.from_gate(gate, params.gate.method)
    if remote and dvc("push", "--run-cache") != 0:
        print(f"dvc push to remote {remote!r} failed; the requests stay applied, and the next cycle pushes, then "
              "records their outcome.", file=sys.stderr)
        return Outcome.INFRASTRUCTURE
    latencies = _record(ledger, pending, release, params.gate.registered_model)
    _log_cycle({"requests_pending": len(pending), "requests_rejected": len(rejected),
                "released": float(release is not None), "compaction": float(bool(release and release.compaction)),
                "start_release_version": float(start.registered_version or 0),
                "releases_since_retrain": float(start.releases_since_retrain)}, ledger, latencies)
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
        print(f"{LOCK_HOLDERS} holds {CYCLE_LOCK}; nothing was cancelled. Cancel after it has finished.",
              file=sys.stderr)
        return int(Outcome.BUSY)
    return 0


def check_shared_state() -> None:
    """`remi cycle --shared-state`: on a throw-away runner, a local MLflow store and a DVC cache without a
    remote go with the runner, and the ledger's `released` events would name models nobody can fetch."""
    problems = []
    if not tracking.tracking_uri().startswith(("http://", "https://")):
        problems.append(f"MLflow's store is {tracking.tracking_uri()}, not a server: set MLFLOW_TRACKING_URI "
                        "(and MLFLOW_TRACKING_USERNAME / _PASSWORD)")
    if default_remote() is None:
        problems.append("DVC has no default remote: `dvc remote add -d <name> <url>`, committed in .dvc/config")
    if problems:
        raise UserError("--shared-state: " + "; ".join(problems) + ". Nothing was done (docs/operations.md, "
                        "CI/CD).")


def run_cycle(wait_seconds: float = 0, shared_state: bool = False, ledger: Path = LEDGER_PATH) -> int:
    """One cycle under the job lock; its Outcome as the exit code."""
    if shared_state:
        check_shared_state()
    try:
        with file_lock(CYCLE_LOCK, wait_seconds, "the re-unlearning job"):
            return int(_cycle(ledger))
    except LockTimeout:
        print(f"{LOCK_HOLDERS} holds {CYCLE_LOCK}; this cycle did nothing. Retry later or pass "
              "--wait SECONDS.", file=sys.stderr)
        return int(Outcome.BUSY)
