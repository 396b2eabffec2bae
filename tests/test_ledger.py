"""The request envelope and the hash-chained ledger, without the pipeline (the job: test_cycle.py)."""

import json
import os
import stat
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from remi.data.erasure_requests import MAX_REQUEST_BYTES, RequestError, read_requests
from remi.errors import UserError
from remi.operations import intake
from remi.operations.cycle import CYCLE_LOCK, Outcome, cancel_requests
from remi.operations.envelope import read_envelope
from remi.operations.ledger import LedgerError, locked, read_events, request_states
from remi.runtime.locks import file_lock


def envelope(tmp_path, name="r.json", **changes):
    body = {"subject_request_id": str(uuid.uuid4()), "type": "erasure", "submitted_time": "2026-11-20T09:30:00Z",
            "regulation": "gdpr", "dataset": "fashion_mnist", "dataset_digest": "abc", "sample_ids": [3, 5]}
    path = tmp_path / name
    path.write_text(json.dumps(body | changes))
    return path


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("changes", "message"), [
    ({"subject_request_id": "req-1"}, "is not a UUID"),
    ({"subject_request_id": "1B4E28BA-2FA1-11D2-883F-0016D3CCA427"}, "must be written '1b4e28ba-2fa1"),
    ({"type": "access"}, "type 'access' is not supported"),
    ({"submitted_time": "2026-11-20 09:30"}, "must be an RFC 3339 time with its offset"),
    ({"submitted_time": "2999-01-01T00:00:00Z"}, "not in the future"),
    ({"sample_ids": [1, "2", True]}, "2 sample ID(s) are not JSON integers"),
    ({"regulation": 17}, "`regulation` must be a JSON string"),
    ({"priority": "high"}, "unknown key 'priority'"),
])
def test_a_bad_envelope_is_refused_with_every_problem_named(tmp_path, changes, message):
    with pytest.raises(RequestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_envelope(envelope(tmp_path, **changes))


def test_requests_are_received_once_and_their_moves_are_checked(project):
    path = envelope(project)
    request = intake.add_request(path)
    assert (project / "data/inbox" / f"{request}.json").exists()
    with pytest.raises(UserError, match="already in the ledger \\(received\\)"):
        intake.add_request(path)
    with locked() as book:
        with pytest.raises(LedgerError, match="cannot become released"):
            book.append(request, "released")
        book.append(request, "validated", sample_ids=2)
    intake.cancel_request(request)
    assert not (project / "data/inbox" / f"{request}.json").exists()
    assert request_states(read_events())[request].state == "cancelled"
    with pytest.raises(UserError, match="only a pending request can be cancelled"):
        intake.cancel_request(request)


def test_a_request_is_cancelled_only_between_cycles_and_not_once_a_cycle_may_have_released_it(project, capsys):
    first, second = (intake.add_request(envelope(project, f"{n}.json")) for n in ("a", "b"))
    _ingest()
    with file_lock(CYCLE_LOCK, 0, "a running cycle"):
        assert cancel_requests([first]) == Outcome.BUSY
    assert "nothing was cancelled" in capsys.readouterr().err
    with locked() as book:
        book.append(second, "applied")  # a cycle killed before recording the outcome: its gate may have run
    with pytest.raises(UserError, match=r"applied by a cycle that did not finish .*: run `remi cycle`"):
        cancel_requests([second])
    assert cancel_requests([first]) == 0
    states = request_states(read_events())
    assert (states[first].state, states[second].state) == ("cancelled", "applied")


def _three_events(project):
    intake.add_request(envelope(project, "a.json"))
    intake.add_request(envelope(project, "b.json"))
    intake.add_request(envelope(project, "c.json"))
    return project / "data/ledger.jsonl"


@pytest.mark.parametrize(("tamper", "broken"), [("edit", 3), ("delete", 2), ("swap", 2)])
def test_an_edited_removed_or_reordered_line_breaks_the_chain(project, tamper, broken):
    """An edited line shows at the next line, whose hash no longer matches (hence the head hash is
    also recorded outside the file, in each cycle's MLflow run)."""
    ledger = _three_events(project)
    lines = ledger.read_text().splitlines(keepends=True)
    if tamper == "edit":
        lines[1] = lines[1].replace('"samples": 2', '"samples": 3')
    elif tamper == "delete":
        del lines[1]
    else:
        lines[1], lines[2] = lines[2], lines[1]
    ledger.write_text("".join(lines))
    with pytest.raises(LedgerError, match=f"line {broken} does not follow line {broken - 1}"):
        read_events(ledger)


def test_an_append_cut_short_by_a_crash_is_dropped_by_the_next_writer(project):
    ledger = _three_events(project)
    complete = ledger.read_bytes()
    ledger.write_bytes(complete + b'{"seq": 4, "time": "2026-')  # the process died mid-write
    assert len(read_events(ledger)) == 3  # readers ignore the torn tail
    intake.add_request(envelope(project, "d.json"))
    assert ledger.read_bytes().startswith(complete) and len(read_events(ledger)) == 4


# ---------------------------------------------------------------- intake after a crash at each step

DATASET = SimpleNamespace(name="fashion_mnist", digest="abc")
MEMBERS = torch.arange(100)


def _ingest():
    return intake.ingest_inbox(DATASET, MEMBERS)


def _log(project):
    return [(e["request"], e["event"]) for e in read_events(project / "data/ledger.jsonl")]


def test_a_valid_request_is_accepted_once_even_if_the_inbox_file_outlived_a_crash(project):
    request = intake.add_request(envelope(project))
    inbox = project / "data/inbox" / f"{request}.json"
    saved = inbox.read_bytes()
    assert _ingest() == [] and (project / "data/requests" / f"{request}.json").exists()
    accepted = read_requests(project / "data/requests")  # the pipeline's format, with the time received
    assert accepted[0].received_time == read_events(project / "data/ledger.jsonl")[0]["time"]
    inbox.write_bytes(saved)  # killed after `validated`, before the inbox file went
    assert _ingest() == [] and not inbox.exists()
    assert _log(project) == [(request, "received"), (request, "validated")]


def test_an_unreadable_file_is_rejected_once_even_if_it_outlived_a_crash(project):
    inbox, rejected = project / "data/inbox", project / "data/rejected"
    inbox.mkdir(parents=True)
    (inbox / "broken.json").write_text("{not json")
    assert _ingest() == ["broken"]
    (rejected / "broken.json").rename(inbox / "broken.json")  # killed after `rejected`, before the file moved
    assert _ingest() == ["broken"] and not (inbox / "broken.json").exists()
    assert _log(project) == [("broken", "received"), ("broken", "rejected")]
    assert sorted(p.name for p in rejected.iterdir()) == ["broken.json", "broken.report.txt"]
    assert "not valid JSON" in (rejected / "broken.report.txt").read_text()
    (inbox / "broken.json").write_text("[]")  # another bad file under the id rejected before: both are kept
    assert _ingest() == ["broken"] and (rejected / "broken.json").read_text() == "{not json"
    assert len(list(rejected.glob("broken.*.json"))) == 1 and _log(project)[-1] == ("broken", "rejected")
    invalid = intake.add_request(envelope(project, sample_ids=[3, 500]))  # 500: not a member
    assert _ingest() == [invalid]
    (rejected / f"{invalid}.json").rename(inbox / f"{invalid}.json")  # the same cut, for a readable envelope
    assert _ingest() == [invalid] and (rejected / f"{invalid}.json").exists()
    assert not list(rejected.glob(f"{invalid}.*.json"))  # finished, not set aside as a resubmission


def test_what_is_not_a_small_regular_file_is_moved_aside_unread_and_blocks_no_other_request(project):
    inbox = project / "data/inbox"
    inbox.mkdir(parents=True)
    os.mkfifo(inbox / "fifo.json")  # reading it would hang the cycle
    (project / "secret.txt").write_text("not for the rejected folder")
    (inbox / "link.json").symlink_to(project / "secret.txt")
    (inbox / "directory.json").mkdir()
    (inbox / "huge.json").write_bytes(b" " * (MAX_REQUEST_BYTES + 1))
    good = intake.add_request(envelope(project))
    assert _ingest() == ["directory", "fifo", "huge", "link"]
    assert list(inbox.iterdir()) == [] and request_states(read_events())[good].state == "validated"
    rejected = project / "data/rejected"
    assert (rejected / "link.json").is_symlink() and stat.S_ISFIFO((rejected / "fifo.json").lstat().st_mode)
    assert (rejected / "directory.json").is_dir() and (rejected / "huge.json").stat().st_size == MAX_REQUEST_BYTES + 1
    assert "symbolic link" in (rejected / "link.report.txt").read_text()
    assert "not a regular file" in (rejected / "fifo.report.txt").read_text()
    assert [event for request, event in _log(project) if request == "huge"] == ["received", "rejected"]


def test_a_resubmission_of_a_pending_request_with_other_samples_is_set_aside_not_dropped(project):
    request = intake.add_request(envelope(project))
    _ingest()
    accepted = project / "data/requests" / f"{request}.json"
    before = accepted.read_bytes()
    envelope(project / "data/inbox", f"{request}.json", subject_request_id=request, sample_ids=[3, 5, 8])
    assert _ingest() == [request] and accepted.read_bytes() == before
    [report] = (project / "data/rejected").glob(f"{request}.*.report.txt")
    assert "already validated with other samples" in report.read_text()
    assert request_states(read_events())[request].state == "validated"


def test_a_file_not_named_after_its_request_and_a_resubmission_are_set_aside(project):
    inbox = project / "data/inbox"
    inbox.mkdir(parents=True)
    envelope(inbox, "upload-1.json")
    assert _ingest() == ["upload-1"] and _log(project) == []  # no request id to record it under
    request = intake.add_request(envelope(project))
    _ingest()
    with locked() as book:
        book.append(request, "applied")
        book.append(request, "released", model_version=1, latency_days=0.1)
    resubmitted = json.loads((project / "data/requests" / f"{request}.json").read_text())
    envelope(inbox, f"{request}.json", subject_request_id=request, sample_ids=resubmitted["sample_ids"])
    assert _ingest() == [request] and request_states(read_events())[request].state == "released"
    reports = sorted((project / "data/rejected").glob("*.report.txt"))
    assert [r.name.split(".")[0] for r in reports] == sorted(["upload-1", request])
    assert "already released" in next(r for r in reports if r.name.startswith(request)).read_text()


def test_a_pending_request_whose_file_was_removed_stops_the_cycle_until_restored_or_cancelled(project):
    request = intake.add_request(envelope(project))
    _ingest()
    accepted = project / "data/requests" / f"{request}.json"
    kept = accepted.read_bytes()
    accepted.unlink()  # by hand: the pipeline would leave the request out and call the cycle done
    with pytest.raises(UserError, match=f"have no file in data/requests/: {request} \\(validated\\)."):
        _ingest()
    accepted.write_bytes(kept)
    assert _ingest() == []
    accepted.unlink()
    intake.cancel_request(request)
    assert _ingest() == [] and request_states(read_events())[request].state == "cancelled"


def test_a_released_request_whose_file_went_or_changed_stops_the_cycle_until_restored(project):
    """Else the next model would take the released request's samples back, with nothing to say so."""
    request = intake.add_request(envelope(project))
    _ingest()
    with locked() as book:
        book.append(request, "applied")
        book.append(request, "released", model_version=1, latency_days=0.1)
    accepted = project / "data/requests" / f"{request}.json"
    kept = accepted.read_bytes()
    accepted.unlink()  # a bad merge, a `git rm`
    with pytest.raises(UserError, match=f"have no file in data/requests/: {request} \\(released\\)"):
        _ingest()
    body = json.loads(kept)
    accepted.write_text(json.dumps(body | {"sample_ids": body["sample_ids"][:1]}))  # one sample fewer
    with pytest.raises(UserError, match=f"differ from what was validated .*: {request}. A request never changes"):
        _ingest()
    with pytest.raises(UserError, match="only a pending request can be cancelled"):
        intake.cancel_request(request)
    accepted.write_bytes(kept)
    assert _ingest() == [] and request_states(read_events())[request].state == "released"


def test_a_ledger_from_before_the_file_md5_was_recorded_still_checks_that_the_files_are_there(project):
    request = intake.add_request(envelope(project))
    (project / "data/inbox" / f"{request}.json").unlink()
    accepted = project / "data/requests" / f"{request}.json"
    accepted.parent.mkdir(parents=True)
    accepted.write_text(json.dumps({"request_id": request, "dataset": "fashion_mnist", "dataset_digest": "abc",
                                    "sample_ids": [3, 5]}))
    with locked() as book:
        book.append(request, "validated", sample_ids=2)  # as the code before the md5 wrote it
    accepted.write_text(accepted.read_text().replace("[3, 5]", "[3]"))
    assert _ingest() == []  # nothing recorded to compare with
    accepted.unlink()
    with pytest.raises(UserError, match="have no file"):
        _ingest()


def test_a_killed_intake_s_half_written_file_is_swept_before_the_requests_are_read(project):
    largest_pid = int(Path("/proc/sys/kernel/pid_max").read_text())
    requests = project / "data/requests"
    requests.mkdir(parents=True)
    left = requests / f".r.json.{largest_pid + 1}.abc.tmp"  # its writer cannot be alive
    left.write_text("{")
    assert _ingest() == [] and not left.exists()


def test_a_cancel_cut_short_and_a_hand_placed_request_are_reconciled(project):
    request = intake.add_request(envelope(project))
    _ingest()
    accepted = project / "data/requests" / f"{request}.json"
    kept = accepted.read_bytes()
    intake.cancel_request(request)
    accepted.write_bytes(kept)  # killed after `cancelled`, before the file left the forget set
    _ingest()
    assert not accepted.exists()
    received = intake.add_request(envelope(project, "second.json"))
    inbox_file = project / "data/inbox" / f"{received}.json"
    kept = inbox_file.read_bytes()
    intake.cancel_request(received)
    inbox_file.write_bytes(kept)  # killed after `cancelled`, before the file left the inbox: nothing to report
    assert _ingest() == [] and not inbox_file.exists() and not (project / "data/rejected").exists()
    by_hand = project / "data/requests/by-hand.json"
    by_hand.write_text(json.dumps({"request_id": "by-hand", "dataset": "fashion_mnist", "dataset_digest": "abc",
                                   "sample_ids": [7]}))
    with locked() as book:  # killed between the adoption's two events
        book.append("by-hand", "received", submitted_time="2026-11-20T09:30:00+00:00", adopted=True)
    _ingest()
    assert request_states(read_events())["by-hand"].state == "validated"
    # One placed by hand that fails validation is rejected like an inbox envelope, not left for prepare to refuse.
    (project / "data/requests/wrong-data.json").write_text(json.dumps(
        {"request_id": "wrong-data", "dataset": "fashion_mnist", "dataset_digest": "other", "sample_ids": [7]}))
    assert _ingest() == ["wrong-data"] and not (project / "data/requests/wrong-data.json").exists()
    assert request_states(read_events())["wrong-data"].state == "rejected"
    assert (project / "data/rejected/wrong-data.json").exists()
    assert "data version" in (project / "data/rejected/wrong-data.report.txt").read_text()


def test_a_request_file_put_back_under_a_rejected_or_cancelled_id_is_set_aside_with_a_report(project):
    """Corrected and put back into data/requests/ by hand: deleting it, as the intake did, dropped the request with
    nothing said. What a cut-short rejection or cancel left there is still finished quietly."""
    requests, rejected = project / "data/requests", project / "data/rejected"
    requests.mkdir(parents=True)
    body = {"request_id": "wrong-data", "dataset": "fashion_mnist", "dataset_digest": "other", "sample_ids": [7]}
    (requests / "wrong-data.json").write_text(json.dumps(body))
    assert _ingest() == ["wrong-data"]
    (requests / "wrong-data.json").write_text(json.dumps(body | {"dataset_digest": "abc"}))  # corrected
    assert _ingest() == ["wrong-data"] and not (requests / "wrong-data.json").exists()
    [report] = rejected.glob("wrong-data.*.report.txt")
    assert "already rejected; a new request needs a new request_id" in report.read_text()
    [kept] = rejected.glob("wrong-data.*.json")
    assert json.loads(kept.read_text())["dataset_digest"] == "abc"
    (rejected / "wrong-data.json").rename(requests / "wrong-data.json")  # killed after `rejected`, before the move
    assert _ingest() == ["wrong-data"] and (rejected / "wrong-data.json").exists()  # moved there, and said again
    assert len(list(rejected.glob("*.json"))) == 2
    request = intake.add_request(envelope(project))
    _ingest()
    accepted = requests / f"{request}.json"
    validated = json.loads(accepted.read_text())
    intake.cancel_request(request)
    accepted.write_text(json.dumps(validated | {"sample_ids": [3]}))  # other samples under the cancelled id
    assert _ingest() == [request] and not accepted.exists()
    [report] = rejected.glob(f"{request}.*.report.txt")
    assert "already cancelled" in report.read_text()
    assert [event for r, event in _log(project) if r in (request, "wrong-data")] == [
        "received", "rejected", "received", "validated", "cancelled"]


def test_an_inbox_file_with_a_very_long_name_is_rejected_under_a_bounded_one_and_blocks_nothing(project):
    """Its report and temp file add to the name: kept whole, they would pass 255 bytes, fail every cycle."""
    inbox = project / "data/inbox"
    request = intake.add_request(envelope(project))
    long_stem = "é" * 120  # 240 bytes
    (inbox / f"{long_stem}.json").write_text("{not json")
    assert _ingest() == [intake.entry_name(inbox / f"{long_stem}.json")]
    name = intake.entry_name(inbox / f"{long_stem}.json")
    assert len(name.encode()) <= intake.MAX_NAME_BYTES and name != intake.entry_name(inbox / f"{long_stem}x.json")
    assert (project / "data/rejected" / f"{name}.json").read_text() == "{not json"
    assert (project / "data/rejected" / f"{name}.report.txt").exists()
    assert request_states(read_events())[request].state == "validated"  # the other request went on
    assert request_states(read_events())[name].state == "rejected"


def test_inbox_names_that_are_not_utf8_or_printable_are_rejected_under_readable_names_and_block_nothing(project):
    """An upload from a Latin-1 system, and a name with a newline: reused as they are, the first stopped every cycle
    with a traceback (its report could not be written in UTF-8), the second would break the cycle's output."""
    inbox = project / "data/inbox"
    request = intake.add_request(envelope(project))
    latin = Path(os.fsdecode(os.fsencode(inbox) + b"/r\xe9q.json"))
    latin.write_text("{not json")
    misnamed = envelope(inbox, "line\nbreak.json")  # a valid envelope, not named after its id
    stray = Path(os.fsdecode(os.fsencode(inbox) + b"/r\xe9q.txt"))
    stray.write_text("")
    names = [intake.entry_name(latin), intake.entry_name(misnamed)]
    assert all(name.isprintable() and name.encode() for name in names)
    assert sorted(_ingest()) == sorted(names)
    rejected = project / "data/rejected"
    assert (rejected / f"{names[0]}.json").read_text() == "{not json"
    assert "\\udce9" in (rejected / f"{names[0]}.report.txt").read_text()  # the path, escaped
    [report] = rejected.glob(f"{names[1]}.*.report.txt")
    assert "named after its subject_request_id" in report.read_text()
    assert request_states(read_events())[request].state == "validated"  # the other request went on
    assert intake.stray_inbox_entries() == ["r\\udce9q.txt"]


def test_inbox_entries_not_named_like_an_envelope_are_reported_and_left_alone(project):
    inbox = project / "data/inbox"
    inbox.mkdir(parents=True)
    (inbox / ".gitkeep").write_text("")
    (inbox / "A.JSON").write_text("{}")
    (inbox / "b.json.part").write_text('{"subj')  # a sender still writing
    assert intake.stray_inbox_entries() == ["A.JSON", "b.json.part"]
    assert _ingest() == [] and (inbox / "A.JSON").exists() and (inbox / "b.json.part").exists()


def test_a_cycle_asked_for_shared_state_refuses_a_local_store_and_no_remote(project, monkeypatch):
    """On a throw-away CI runner both would go with it, and the ledger would name unreachable releases."""
    from remi.operations.cycle import run_cycle

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(UserError) as refused:
        run_cycle(shared_state=True)
    assert "not a server: set MLFLOW_TRACKING_URI" in str(refused.value)
    assert "DVC has no default remote" in str(refused.value)
    assert not (project / "data").exists() and not (project / CYCLE_LOCK).exists()  # nothing was done


def test_a_ledger_behind_the_registry_stops_the_cycle_before_anything_changes(project, monkeypatch):
    """A CI cycle's ledger comes back as a pull request: a cycle started before it is merged must not apply its
    requests again (nor run a pipeline whose model the registry refuses)."""
    import mlflow
    import yaml

    from remi.operations.cycle import run_cycle
    from remi.pipeline.release import register_candidate, request_tags
    from tests.conftest import REPO

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["forget"]["mode"] = "requests"
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    uri = f"sqlite:///{project / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    released = intake.add_request(envelope(project, "a.json"))
    _ingest()
    with locked() as book:
        book.append(released, "applied")
        book.append(released, "released", model_version=1, latency_days=0.1)
    # `elsewhere` was released by a cycle whose ledger is not here; `waiting` is a new request.
    elsewhere, waiting = str(uuid.uuid4()), intake.add_request(envelope(project, "c.json"))
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        model_uri = mlflow.pytorch.log_model(torch.nn.Linear(2, 2), name="model", pip_requirements=["torch"],
                                             input_example=torch.zeros(1, 2).numpy()).model_uri
    honoured = request_tags(sorted([released, elsewhere]))
    name = params["gate"]["registered_model"]
    register_candidate(uri, model_uri, name, {"model_md5": "m", "forget_set_md5": "f"} | honoured)
    ledger = (project / "data/ledger.jsonl").read_bytes()
    with pytest.raises(UserError, match=f"honours 1 erasure request\\(s\\) that .* not hold as accepted: {elsewhere}. "
                                         "The ledger is behind the registry: merge the pull request"):
        run_cycle()
    assert (project / "data/ledger.jsonl").read_bytes() == ledger  # nothing ingested, nothing applied
    assert (project / "data/inbox" / f"{waiting}.json").exists()
    # Cancelled here (a `remi request cancel` on a checkout without that cycle's ledger): still behind.
    intake.cancel_request(intake.add_request(envelope(project, "e.json", subject_request_id=elsewhere)))
    with pytest.raises(UserError, match=f"not hold as accepted: {elsewhere}"):
        run_cycle()


def test_a_registry_that_cannot_answer_stops_the_cycle_before_anything_changes(project, monkeypatch, capsys):
    """Read as "no candidate yet", a server that is down would let the cycle apply requests and a model that
    drops released ones take the alias; the cycle stops as for a failed pull (exit 6), the inbox untouched."""
    import socket

    import yaml

    from remi.operations.cycle import run_cycle
    from tests.conftest import REPO

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["forget"]["mode"] = "requests"
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    with socket.socket() as probe:  # a free loopback port, closed again: nothing listens there
        probe.bind(("127.0.0.1", 0))
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{probe.getsockname()[1]}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    waiting = intake.add_request(envelope(project))
    ledger = (project / "data/ledger.jsonl").read_bytes()
    assert run_cycle() == Outcome.INFRASTRUCTURE
    assert "could not say which version" in capsys.readouterr().err
    assert (project / "data/ledger.jsonl").read_bytes() == ledger  # nothing ingested, nothing applied
    assert (project / "data/inbox" / f"{waiting}.json").exists()
