"""Erasure-request files under data/requests/, read strictly.

Every entry of the directory is either a well-formed request or a listed problem: nothing is
skipped in silence (a `b.JSON` or `b.json.bak` beside `a.json` would otherwise drop a request).
The JSON is strict: integers are JSON integers, no duplicate or unknown keys, bounded size and depth.
All problems of all files are reported together, so one fix-up round suffices.
"""

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from remi.errors import UserError
from remi.runtime.files import read_user_file, temp_writer

MAX_REQUEST_BYTES = 1024 * 1024  # ~150,000 sample IDs: more than any split holds
MAX_REQUEST_FILES = 10_000
MAX_SAMPLE_ID = 2**31 - 1  # a row index; larger integers cannot name a sample
ALLOWED_EXTRAS = {".gitkeep"}  # the only non-request entry the directory may hold
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
FIELDS = {"request_id": str, "dataset": str, "dataset_digest": str, "sample_ids": list}
OPTIONAL_FIELDS = {"received_time": str}  # written by `remi cycle`: when the ledger received the request
EXAMPLE = ('{"request_id": "req-001", "dataset": "fashion_mnist", "dataset_digest": "<sha256 from '
           'data/splits/target_train.json>", "sample_ids": [12, 345]}, saved as data/requests/req-001.json')


class RequestError(UserError):
    """One or more erasure-request files cannot be used; the message lists each problem."""


@dataclass(frozen=True)
class ErasureRequest:
    """One file under data/requests/: which samples (by ID, for which data digest) to forget."""

    path: Path
    request_id: str
    dataset: str
    dataset_digest: str
    sample_ids: list[int]
    received_time: str | None = None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"duplicate key(s) {repeated}")
    return dict(pairs)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def decode_strict_json(path: Path) -> Any:
    """Strict JSON of one file: UTF-8, no NaN/Infinity, no duplicate keys, bounded size and depth."""
    raw = read_user_file(path, MAX_REQUEST_BYTES, "Erasure request")
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys,
                          parse_constant=_reject_constant)
    except UnicodeDecodeError as error:
        raise RequestError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}).") from error
    except RecursionError as error:
        raise RequestError(f"{path}: JSON nested too deeply.") from error
    except ValueError as error:  # JSONDecodeError, duplicate keys, NaN, integers over Python's digit limit
        raise RequestError(f"{path}: not valid JSON for a request: {str(error)[:200]}.") from error


def time_with_offset(value: str) -> datetime | None:
    """An ISO 8601 / RFC 3339 time that carries its UTC offset; None if `value` is not one."""
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else None


def _field_problems(path: Path, body: Any) -> list[str]:
    if not isinstance(body, dict):
        return [f"{path}: the top level must be a JSON object"]
    problems = [f"{path}: unknown key {key[:40]!r}" for key in body if key not in FIELDS | OPTIONAL_FIELDS]
    for key, kind in {**FIELDS, **OPTIONAL_FIELDS}.items():
        if key not in body:
            if key in FIELDS:
                problems.append(f"{path}: `{key}` is missing")
        elif not isinstance(body[key], kind):
            problems.append(f"{path}: `{key}` must be a JSON {'string' if kind is str else 'array'}")
    if problems:
        return problems
    if "received_time" in body and time_with_offset(body["received_time"]) is None:
        problems.append(f"{path}: received_time {body['received_time'][:40]!r} must be an ISO 8601 time with its "
                        "offset, e.g. 2026-11-27T09:30:00+00:00")
    if not REQUEST_ID.fullmatch(body["request_id"]):
        problems.append(f"{path}: request_id {body['request_id'][:40]!r} must be 1-128 letters, digits, "
                        "'.', '_' or '-', starting with a letter or digit")
    elif body["request_id"] != path.stem:
        problems.append(f"{path}: request_id {body['request_id']!r} must match the file name "
                        f"({body['request_id']}.json)")
    return problems + sample_id_problems(path, body["sample_ids"])


def sample_id_problems(path: Path, sample_ids: list[Any]) -> list[str]:
    """A non-empty list of JSON integers in 0..MAX_SAMPLE_ID (bool is not an ID, nor "12")."""
    if not sample_ids:
        return [f"{path}: `sample_ids` is empty"]
    bad = [(i, v) for i, v in enumerate(sample_ids) if type(v) is not int or not 0 <= v <= MAX_SAMPLE_ID]
    if bad:
        shown = ", ".join(f"[{i}] = {str(v)[:24]}" for i, v in bad[:5])
        return [f"{path}: {len(bad)} sample ID(s) are not JSON integers in 0..{MAX_SAMPLE_ID}: {shown}"]
    return []


def _not_a_request(path: Path) -> str:
    """Why `path` is no request, and what to do: a stopped write's leftover must not be renamed into one."""
    writer = temp_writer(path.name)
    if writer is None:
        return (f"{path}: not a request file (requests are named <request_id>.json, lower case); "
                f"rename it or move it out of {path.parent}/")
    pid, running = writer
    if running:
        return f"{path}: a file that process {pid} is still writing; run again once that process has finished"
    return (f"{path}: left half-written by process {pid}, which was stopped; it is no request and must not be "
            "renamed into one: delete it (`remi cycle` removes such files itself, and takes the request it was "
            "writing again from data/inbox/)")


def read_requests(requests_dir: Path) -> list[ErasureRequest]:
    """Every request in `requests_dir`, or RequestError listing every unusable entry."""
    requests_dir = Path(requests_dir)
    if not requests_dir.is_dir():
        return []
    entries = sorted(requests_dir.iterdir())
    if len(entries) > MAX_REQUEST_FILES:
        raise RequestError(f"{requests_dir} holds {len(entries):,} entries; the limit is {MAX_REQUEST_FILES:,}.")
    problems: list[str] = []
    requests: list[ErasureRequest] = []
    for path in entries:
        if path.name in ALLOWED_EXTRAS:
            continue
        if path.suffix != ".json":
            problems.append(_not_a_request(path))
            continue
        try:
            body = decode_strict_json(path)
        except UserError as error:
            problems.append(str(error))
            continue
        found = _field_problems(path, body)
        problems += found
        if not found:
            requests.append(ErasureRequest(path, body["request_id"], body["dataset"], body["dataset_digest"],
                                           body["sample_ids"], body.get("received_time")))
    if problems:
        raise RequestError("Erasure requests rejected; nothing was changed:\n  - " + "\n  - ".join(problems)
                           + f"\nExpected format: {EXAMPLE}.")
    return requests
