"""The request ledger: an append-only, git-tracked JSON-lines file (data/ledger.jsonl), one event per
line, each carrying the SHA-256 of the line before it, so an edited, removed or reordered line is
detected (`remi request verify`).

A request moves   received -> validated | rejected;  validated -> applied -> released | gate_failed;
gate_failed -> applied (the next cycle tries again);  cancelled ends it at any point before release.
Every append checks that move against the request's last event, under a lock, and is fsync'ed
before it returns: a crash leaves each request in its last recorded state, never in an invented one.
"""

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from remi.errors import UserError
from remi.runtime.locks import file_lock

LEDGER_PATH = Path("data/ledger.jsonl")
GENESIS = "0" * 64  # the `prev_sha256` of the first line
MOVES: dict[str | None, set[str]] = {
    None: {"received"},
    "received": {"validated", "rejected", "cancelled"},
    "validated": {"applied", "cancelled"},
    "applied": {"released", "gate_failed", "cancelled"},
    "gate_failed": {"applied", "cancelled"},
    "rejected": set(), "released": set(), "cancelled": set(),
}
PENDING = ("validated", "applied", "gate_failed")  # accepted, not yet honoured by a released model


class LedgerError(UserError):
    """The ledger is not a valid chain, or an event would break a request's life cycle."""


@dataclass
class RequestState:
    request_id: str
    state: str
    received: datetime
    submitted: datetime
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def model_version(self) -> str:
        for event in reversed(self.events):
            if "model_version" in event["detail"]:
                return str(event["detail"]["model_version"])
        return "-"


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _sha256(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _lines(path: Path) -> list[bytes]:
    """Complete lines only: a final line without its newline is an append that was cut short."""
    data = path.read_bytes() if path.exists() else b""
    return data.split(b"\n")[:-1]


def read_events(path: Path = LEDGER_PATH) -> list[dict[str, Any]]:
    """Every event, after checking the hash chain, the numbering and each request's moves."""
    events, previous = [], GENESIS
    states: dict[str, str] = {}
    for number, line in enumerate(_lines(path), start=1):
        try:
            event = json.loads(line)
        except ValueError as error:
            raise LedgerError(f"{path} line {number} is not JSON ({error}); restore it from git.") from error
        if not isinstance(event, dict) or event.get("prev_sha256") != previous or event.get("seq") != number:
            raise LedgerError(f"{path} line {number} does not follow line {number - 1}: the ledger was edited, "
                              f"reordered or cut. Restore it from git (`git log -p {path}`).")
        request, name = str(event.get("request")), event.get("event")
        if name not in MOVES.get(states.get(request), set()):
            raise LedgerError(f"{path} line {number}: {request} cannot go from {states.get(request)} to {name}.")
        states[request] = name
        events.append(event)
        previous = _sha256(line)
    return events


def head_sha256(path: Path = LEDGER_PATH) -> str:
    """The hash of the last line: recorded outside the file (each cycle's MLflow run), because an edit
    of the last line breaks no later link."""
    lines = _lines(path)
    return _sha256(lines[-1]) if lines else GENESIS


def request_states(events: list[dict[str, Any]]) -> dict[str, RequestState]:
    states: dict[str, RequestState] = {}
    for event in events:
        request = event["request"]
        if event["event"] == "received":
            states[request] = RequestState(request, "received", datetime.fromisoformat(event["time"]),
                                           datetime.fromisoformat(event["detail"]["submitted_time"]))
        states[request].state = event["event"]
        states[request].events.append(event)
    return states


@contextmanager
def locked(path: Path = LEDGER_PATH) -> Iterator["LedgerWriter"]:
    """The ledger for appending, held against every other writer."""
    with file_lock(path.with_name(f".{path.name}.lock"), 60, "the request ledger"):
        yield LedgerWriter(path)


class LedgerWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._drop_torn_tail()
        self.events = read_events(path)
        self.states = request_states(self.events)

    def _drop_torn_tail(self) -> None:
        """Cut an append that a crash left without its newline: it was never acknowledged."""
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                os.truncate(self.path, data.rfind(b"\n") + 1)

    def state(self, request: str) -> str | None:
        found = self.states.get(request)
        return found.state if found else None

    def append(self, request: str, event: str, **detail: Any) -> dict[str, Any]:
        if event not in MOVES.get(self.state(request), set()):
            raise LedgerError(f"{request} is {self.state(request) or 'unknown'}: it cannot become {event}.")
        lines = _lines(self.path)
        record = {"seq": len(lines) + 1, "time": now().isoformat(), "request": request, "event": event,
                  "detail": detail, "prev_sha256": _sha256(lines[-1]) if lines else GENESIS}
        line = json.dumps(record, sort_keys=True).encode() + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            written = 0
            while written < len(line):  # a short write (e.g. a full disk) would leave a torn line behind
                written += os.write(fd, line[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        self.events.append(record)
        self.states = request_states(self.events)
        return record
