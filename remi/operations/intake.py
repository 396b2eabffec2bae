"""Requests in and out of the pipeline's forget set.

    data/inbox/<id>.json      envelopes received (`remi request add`, or dropped there by a system)
    data/requests/<id>.json   accepted requests: their union is the forget set (prepare reads these)
    data/rejected/<id>.json   refused envelopes, beside <id>.report.txt saying why (an envelope that
                              cannot become a request, e.g. a duplicate, is set aside there with a
                              timestamp in its name and no ledger event)

Each step writes the file before the ledger event and removes the old file after it, so a crash
between the two leaves a state the next cycle recognises and completes (no request lost, none
applied twice: the forget set is a union, and every event is checked against the request's state).
"""

import hashlib
import os
from pathlib import Path

import torch

from remi.data.datasets import Dataset
from remi.data.erasure_requests import ErasureRequest, RequestError, decode_strict_json, read_requests
from remi.data.validation import validate_requests
from remi.errors import UserError, ValidationFailed
from remi.operations.envelope import Envelope, read_envelope
from remi.operations.ledger import LEDGER_PATH, PENDING, LedgerWriter, locked, now
from remi.pipeline.layout import REQUESTS_DIR
from remi.runtime.files import atomic_write, file_md5, sweep_stale_temps, temp_writer, write_json

INBOX_DIR = Path("data/inbox")
REJECTED_DIR = Path("data/rejected")
SHOWN_REPORT_CHARS = 2000  # of a rejection report, in the ledger (the whole report is in data/rejected/)
IN_FORGET_SET = (*PENDING, "released")  # states whose file data/requests/ must keep as it was validated
MAX_NAME_BYTES = 100  # of an inbox entry's name as we reuse it: the files derived from it stay under 255 bytes


def entry_name(path: Path) -> str:
    """The name an inbox entry is rejected or set aside under (and, when unreadable, recorded under): its stem,
    or its first bytes' printable characters and a digest of the whole when the stem is long (the rejected
    files, their reports and their temp files add up to ~60 bytes to it and a file name has at most 255), not
    UTF-8 (an upload from a Latin-1 system: its stray bytes would stop the report's writing and the cycle's
    output) or not printable (a newline would break the cycle's output into lines)."""
    raw = os.fsencode(path.stem)
    if len(raw) <= MAX_NAME_BYTES and raw.decode(errors="replace") == path.stem and path.stem.isprintable():
        return path.stem
    readable = "".join(c for c in raw[:MAX_NAME_BYTES - 17].decode(errors="ignore") if c.isprintable())
    return f"{readable}-{hashlib.sha256(raw).hexdigest()[:16]}"


def utf8_safe(text: str) -> str:
    """`text` as UTF-8 can hold it: a path whose file name is not UTF-8 carries its stray bytes as lone
    surrogates, which a UTF-8 report or terminal refuses; they are written as escapes instead."""
    return text.encode(errors="backslashreplace").decode()


def _write_durably(path: Path, body: dict[str, object]) -> None:
    """`write_json`, then the file and its folder synced to disk: the ledger event that follows is synced too,
    and after a power loss it must not name a request whose file came back empty or missing."""
    write_json(path, body)
    for synced in (path, path.parent):
        fd = os.open(synced, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _received_detail(envelope: Envelope) -> dict[str, object]:
    return {"submitted_time": envelope.submitted_time.isoformat(), "regulation": envelope.regulation,
            "dataset": envelope.dataset, "samples": len(envelope.sample_ids)}


def add_request(path: Path, ledger: Path = LEDGER_PATH) -> str:
    """Receive the envelope in `path`: copy it to the inbox and record `received`; its request id."""
    envelope = read_envelope(path)
    with locked(ledger) as book:
        if book.state(envelope.request_id) is not None:
            raise UserError(f"Request {envelope.request_id} is already in the ledger "
                            f"({book.state(envelope.request_id)}); see `remi request status`.")
        _write_durably(INBOX_DIR / f"{envelope.request_id}.json", envelope.envelope_body())
        book.append(envelope.request_id, "received", **_received_detail(envelope))
    return envelope.request_id


def cancel_request(request: str, ledger: Path = LEDGER_PATH) -> None:
    """End a request that no released model honours yet; its file leaves the inbox or the forget set. Called
    between cycles (remi.operations.cycle.cancel_requests holds the job lock)."""
    with locked(ledger) as book:
        state = book.state(request)
        if state is None:
            raise UserError(f"Request {request!r} is not in the ledger: `remi request status` lists every request.")
        if state in ("rejected", "released", "cancelled"):
            raise UserError(f"Request {request} is {state}: only a pending request can be cancelled"
                            + (" (a released model already honours it)." if state == "released" else "."))
        if state == "applied":  # between cycles only after a kill or a failure: its gate may have registered a model
            raise UserError(f"Request {request} was applied by a cycle that did not finish (a model honouring it may "
                            "already be registered): run `remi cycle` to finish it, then cancel the request if it is "
                            "still pending (gate_failed).")
        book.append(request, "cancelled")  # first: a kill before the files go is finished by the next cycle
        for directory in (INBOX_DIR, REQUESTS_DIR):
            (directory / f"{request}.json").unlink(missing_ok=True)


def _move_to_rejected(path: Path, name: str) -> None:
    """Move an inbox entry to data/rejected/<name>.json by renaming it, never reading it: a symbolic link, a
    FIFO, a directory or an oversized file moves as it is (reading one could hang, follow the link, or copy
    gigabytes)."""
    REJECTED_DIR.mkdir(parents=True, exist_ok=True)
    os.replace(path, REJECTED_DIR / f"{name}.json")


def _set_aside(path: Path, report: str) -> None:
    """Move an inbox file to data/rejected/ with its report, without a ledger event (the request id
    is unknown, or already has its own history)."""
    name = f"{entry_name(path)}.{now().strftime('%Y%m%dT%H%M%SZ')}"
    atomic_write(REJECTED_DIR / f"{name}.report.txt", lambda tmp: tmp.write_text(utf8_safe(report) + "\n"))
    _move_to_rejected(path, name)


def _reject(book: LedgerWriter, path: Path, request: str, report: str) -> None:
    """Record `request` rejected, its report and envelope under data/rejected/<request>.*. The envelope moves
    after the event, so a kill in between leaves it in the inbox and the next cycle only moves it."""
    if book.state(request) == "rejected" and (REJECTED_DIR / f"{request}.json").exists():
        # A new unreadable file under an id rejected before: keep both envelopes.
        _set_aside(path, f"{report}\n(and {request} was already rejected)")
        return
    if book.state(request) != "rejected":
        report = utf8_safe(report)
        atomic_write(REJECTED_DIR / f"{request}.report.txt", lambda tmp: tmp.write_text(report + "\n"))
        book.append(request, "rejected", report=report[:SHOWN_REPORT_CHARS])
    if path != REQUESTS_DIR / f"{request}.json":
        (REQUESTS_DIR / f"{request}.json").unlink(missing_ok=True)  # written before a crash, never validated
    _move_to_rejected(path, request)


def _ingest_one(book: LedgerWriter, path: Path, dataset: Dataset, target_train: torch.Tensor) -> bool:
    """Validate one inbox file into the forget set or out to data/rejected/; True if accepted."""
    try:
        envelope = read_envelope(path)
    except UserError as error:  # unreadable as a request, or not a regular file of a bounded size at all
        name = entry_name(path)
        if book.state(name) in (None, "received", "rejected"):
            if book.state(name) is None:
                book.append(name, "received", submitted_time=now().isoformat(), unreadable=True)
            _reject(book, path, name, str(error))
        else:
            _set_aside(path, f"{error}\n(and {name} is already a {book.state(name)} request)")
        return False
    request, state = envelope.request_id, book.state(envelope.request_id)
    if path.stem != request:
        _set_aside(path, f"{path}: an envelope is named after its subject_request_id: {request}.json")
        return False
    accepted = REQUESTS_DIR / f"{request}.json"
    if state in ("validated", "applied", "gate_failed") and accepted.exists():
        if _same_request(envelope, accepted):
            path.unlink()  # a kill came after `validated`, before the inbox file went
            return True
        _set_aside(path, f"{path}: request {request} is already {state} with other samples or data; a new request "
                         "needs a new subject_request_id")
        return False
    if state == "rejected" and not (REJECTED_DIR / f"{request}.json").exists():
        _move_to_rejected(path, request)  # a kill came after `rejected`, before the envelope moved
        return False
    if state == "cancelled" and book.states[request].events[0]["detail"] == _received_detail(envelope):
        path.unlink()  # a cancel cut short before the inbox file went: not a new request to report
        return True
    if state not in (None, "received"):
        _set_aside(path, f"{path}: request {request} is already {state}; a new request needs a new "
                         "subject_request_id")
        return False
    if state is None:  # dropped into the inbox without `remi request add`
        book.append(request, "received", **_received_detail(envelope))
    try:
        validate_requests([ErasureRequest(accepted, request, envelope.dataset, envelope.dataset_digest,
                                          envelope.sample_ids)], target_train, dataset.name, dataset.digest)
    except ValidationFailed as error:
        _reject(book, path, request, str(error))
        return False
    _write_durably(accepted, envelope.request_body() | {"received_time": book.states[request].received.isoformat()})
    book.append(request, "validated", sample_ids=len(envelope.sample_ids), request_md5=file_md5(accepted))
    path.unlink()
    return True


def _same_request(envelope: Envelope, accepted: Path) -> bool:
    """Whether `accepted` (data/requests/) holds what `envelope` asks, so the envelope is a leftover, not a
    resubmission that would otherwise vanish unapplied."""
    try:
        body = decode_strict_json(accepted)
    except UserError:
        return False
    return isinstance(body, dict) and {key: body.get(key) for key in envelope.request_body()} == envelope.request_body()


def _reconcile_accepted(book: LedgerWriter, dataset: Dataset, target_train: torch.Tensor) -> list[str]:
    """data/requests/ agrees with the ledger after any crash: files the ledger does not know (put there by
    hand) are recorded, ones stuck at `received` validated (or rejected, as the inbox's are, if they fail
    validation), what a cut-short cancel or rejection left finished; a file put back under a cancelled or
    rejected id is set aside with a report. The ids rejected or set aside."""
    try:
        present = read_requests(REQUESTS_DIR)
    except RequestError as error:
        raise UserError(f"{REQUESTS_DIR} holds files the pipeline cannot read:\n{error}") from error
    inbox = {p.stem for p in INBOX_DIR.glob("*.json")} if INBOX_DIR.is_dir() else set()
    rejected = []
    for request in present:
        state = book.state(request.request_id)
        if state == "cancelled" and _validated_md5(book, request.request_id) == file_md5(request.path):
            request.path.unlink()  # a cancel cut short before the file left the forget set
            continue
        if state == "rejected" and not (REJECTED_DIR / f"{request.request_id}.json").exists():
            # A kill came after `rejected`, before the move; or the rejected file was moved back as it was: reported
            # again either way, so a resubmission is never dropped without a word.
            _move_to_rejected(request.path, request.request_id)
            rejected.append(request.request_id)
            continue
        if state in ("cancelled", "rejected"):  # put back by hand, perhaps corrected: reported, never deleted
            _set_aside(request.path, f"{request.path}: request {request.request_id} is already {state}; a new "
                                     "request needs a new request_id")
            rejected.append(request.request_id)
            continue
        if state is None:
            book.append(request.request_id, "received", submitted_time=now().isoformat(), adopted=True)
        if book.state(request.request_id) == "received" and request.request_id not in inbox:
            try:
                validate_requests([request], target_train, dataset.name, dataset.digest)
            except ValidationFailed as error:  # else every cycle's pipeline would stop at prepare
                _reject(book, request.path, request.request_id, str(error))
                rejected.append(request.request_id)
                continue
            book.append(request.request_id, "validated", sample_ids=len(request.sample_ids),
                        request_md5=file_md5(request.path))
    _check_forget_set_files(book, present)
    return rejected


def _validated_md5(book: LedgerWriter, request: str) -> str | None:
    """The md5 of the request's file when it was validated; None in a ledger written before it was recorded."""
    validated = [e for e in book.states[request].events if e["event"] == "validated"]
    return validated[-1]["detail"].get("request_md5") if validated else None


def _check_forget_set_files(book: LedgerWriter, present: list[ErasureRequest]) -> None:
    """Every pending or released request's file is there, as it was validated. Every step writes a request's
    file before its `validated` event, so a missing or changed file was removed or edited by hand (a bad merge,
    a `git rm`): the pipeline would leave its samples out, and a released request's samples would come back
    into the next model with nothing to say so."""
    expected = {request: state.state for request, state in book.states.items() if state.state in IN_FORGET_SET}
    missing = sorted(set(expected) - {request.request_id for request in present})
    changed = sorted(request.request_id for request in present if request.request_id in expected
                     and _validated_md5(book, request.request_id) not in (None, file_md5(request.path)))
    problems = [f"{len(missing)} request(s) that the ledger holds as pending or released have no file in "
                f"{REQUESTS_DIR}/: {', '.join(f'{r} ({expected[r]})' for r in missing)}."] if missing else []
    if changed:
        problems.append(f"{len(changed)} request file(s) in {REQUESTS_DIR}/ differ from what was validated (the md5 "
                        f"in the ledger's `validated` event): {', '.join(changed)}. A request never changes: a new "
                        "one needs a new id.")
    if problems:
        raise UserError(" ".join(problems) + " Restore each file as it was (`git log -p -- data/requests/<id>.json`, "
                        "`git checkout <commit> -- data/requests/<id>.json`); a pending request may instead be ended "
                        "with `remi request cancel <id>`, a released one never. No pipeline ran.")


def ingest_inbox(dataset: Dataset, target_train: torch.Tensor, ledger: Path = LEDGER_PATH) -> list[str]:
    """Every inbox file validated (Great Expectations, against this data version) into the forget
    set or rejected with its report; the ids rejected. Accepted requests already under data/requests/
    that the ledger does not know (put there by hand) are recorded as received, then validated or rejected."""
    rejected = []
    with locked(ledger) as book:
        sweep_stale_temps((INBOX_DIR, REQUESTS_DIR, REJECTED_DIR))  # a killed intake's half-written files
        for path in sorted(INBOX_DIR.glob("*.json")) if INBOX_DIR.is_dir() else []:
            if not _ingest_one(book, path, dataset, target_train):
                rejected.append(entry_name(path))
        rejected += _reconcile_accepted(book, dataset, target_train)
    return rejected


def stray_inbox_entries() -> list[str]:
    """Inbox entries the intake leaves alone, not being named like an envelope (`<id>.json`): a misnamed file
    (`X.JSON`), or one a sender is still writing under a temporary name, which moving would break."""
    if not INBOX_DIR.is_dir():
        return []
    return sorted(utf8_safe(path.name) for path in INBOX_DIR.iterdir()
                  if path.suffix != ".json" and path.name != ".gitkeep" and temp_writer(path.name) is None)
