"""An erasure request as it arrives: today's sample-ID request inside an envelope in the style of
OpenDSR and the Data Rights Protocol (subject_request_id, type, submitted_time, regulation).

    {"subject_request_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "type": "erasure",
     "submitted_time": "2026-11-27T09:30:00Z", "regulation": "gdpr",
     "dataset": "fashion_mnist", "dataset_digest": "<from data/splits/target_train.json>",
     "sample_ids": [12, 345]}

The envelope's metadata goes into the ledger's `received` event; what the pipeline reads (the
request under data/requests/) keeps today's format, with the subject request id as its request_id.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from remi.data.erasure_requests import RequestError, decode_strict_json, sample_id_problems, time_with_offset

ENVELOPE_FIELDS = {"subject_request_id": str, "type": str, "submitted_time": str, "dataset": str,
                   "dataset_digest": str, "sample_ids": list}
OPTIONAL_FIELDS = {"regulation": str}


@dataclass(frozen=True)
class Envelope:
    request_id: str  # the subject request id, a UUID in canonical lower-case form
    submitted_time: datetime
    regulation: str | None
    dataset: str
    dataset_digest: str
    sample_ids: list[int]

    def envelope_body(self) -> dict[str, Any]:
        """The envelope as validated (what the inbox keeps)."""
        body = {"subject_request_id": self.request_id, "type": "erasure",
                "submitted_time": self.submitted_time.isoformat(), "dataset": self.dataset,
                "dataset_digest": self.dataset_digest, "sample_ids": self.sample_ids}
        return body | ({"regulation": self.regulation} if self.regulation is not None else {})

    def request_body(self) -> dict[str, Any]:
        """The request as the pipeline reads it from data/requests/<request_id>.json."""
        return {"request_id": self.request_id, "dataset": self.dataset, "dataset_digest": self.dataset_digest,
                "sample_ids": self.sample_ids}


def _uuid_problem(value: str) -> str | None:
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return f"subject_request_id {value[:60]!r} is not a UUID"
    return None if str(parsed) == value else f"subject_request_id must be written {str(parsed)!r}"


def _time(value: str) -> datetime | None:
    """An RFC 3339 timestamp with its UTC offset, not in the future; None if it is not one."""
    stamp = time_with_offset(value)
    return stamp if stamp is not None and stamp <= datetime.now(UTC) else None


def _problems(path: Path, body: Any) -> list[str]:
    if not isinstance(body, dict):
        return [f"{path}: the top level must be a JSON object"]
    known = ENVELOPE_FIELDS | OPTIONAL_FIELDS
    problems = [f"{path}: unknown key {key[:40]!r}" for key in body if key not in known]
    problems += [f"{path}: `{key}` is missing" for key in ENVELOPE_FIELDS if key not in body]
    problems += [f"{path}: `{key}` must be a JSON {'string' if kind is str else 'array'}"
                 for key, kind in known.items() if key in body and not isinstance(body[key], kind)]
    if problems:
        return problems
    if (problem := _uuid_problem(body["subject_request_id"])) is not None:
        problems.append(f"{path}: {problem}")
    if body["type"] != "erasure":
        problems.append(f"{path}: type {body['type'][:40]!r} is not supported; only `erasure` requests are")
    if _time(body["submitted_time"]) is None:
        problems.append(f"{path}: submitted_time {body['submitted_time'][:40]!r} must be an RFC 3339 time with "
                        "its offset, not in the future (e.g. 2026-11-27T09:30:00Z)")
    return problems + sample_id_problems(path, body["sample_ids"])


def read_envelope(path: Path) -> Envelope:
    """The envelope in `path`, or a RequestError listing every problem."""
    body = decode_strict_json(path)
    problems = _problems(path, body)
    if problems:
        raise RequestError("Erasure request refused:\n  - " + "\n  - ".join(problems))
    submitted = _time(body["submitted_time"])
    assert submitted is not None
    return Envelope(body["subject_request_id"], submitted, body.get("regulation"), body["dataset"],
                    body["dataset_digest"], body["sample_ids"])
