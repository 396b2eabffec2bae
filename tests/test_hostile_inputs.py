"""Hostile inputs against a finished tiny pipeline: erasure requests, params, raw data and model files.

Every case must end in a readable error naming the problem, exit code 2, every output byte as it
was, and stay within a time and memory bound (the process is measured, not trusted).
REMI_HOSTILE_REPORT=<file> appends each case's seconds and peak memory to <file>.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from remi.pipeline.params import overlay, parse_params
from tests.conftest import clone_run, output_hashes

pytestmark = pytest.mark.slow
SECONDS_BOUND = 90
MEMORY_BOUND_MB = 2500  # torch + Great Expectations + the dataset take ~1.3 GB in a normal prepare


def run_bounded(work: Path, env: dict, *cmd: str) -> tuple[int, str, float, float]:
    """(exit code, stdout+stderr, seconds, peak RSS in MB) of `cmd`, killed at SECONDS_BOUND."""
    log = work / ".hostile.log"
    started = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > SECONDS_BOUND:
                os.killpg(process.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    log.unlink()
    return process.returncode, text, time.monotonic() - started, usage.ru_maxrss / 1024


@pytest.fixture(scope="module")
def copy(tiny_run, tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile") / "repo"
    run = clone_run(tiny_run, work)
    return work, run


def assert_refused(work: Path, env: dict, cmd: tuple[str, ...], message: str) -> None:
    before = output_hashes(work)
    code, text, seconds, peak_mb = run_bounded(work, env, *cmd)
    if os.environ.get("REMI_HOSTILE_REPORT"):  # one JSON line per case: what the bounds are checked against
        with open(os.environ["REMI_HOSTILE_REPORT"], "a") as report:
            report.write(json.dumps({"case": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
                                     "seconds": round(seconds, 2), "peak_mb": round(peak_mb)}) + "\n")
    assert code == 2, f"exit {code}:\n{text[-3000:]}"
    assert message in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert output_hashes(work) == before
    assert seconds < SECONDS_BOUND and peak_mb < MEMORY_BOUND_MB, (seconds, peak_mb)


# ---------------------------------------------------------------- erasure requests (stage prepare)

def _request(digest: str, **changes) -> dict:
    return {"request_id": "a", "dataset": "fashion_mnist", "dataset_digest": digest, "sample_ids": []} | changes


def _write(path: Path, content) -> None:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


FULL_WIDTH_ID = "".join(chr(0xFF10 + int(d)) for d in "13567")  # "13567" in full-width digits
REQUEST_CASES = {
    # name: (file name, content builder (digest, member id) -> bytes/str, expected message)
    "upper-case extension": ("b.JSON", lambda d, m: "{}", "b.JSON: not a request file"),
    "backup file": ("b.json.bak", lambda d, m: "{}", "b.json.bak: not a request file"),
    "string id": ("b.json", lambda d, m: json.dumps(_request(d, request_id="b", sample_ids=[str(m)])),
                  "not JSON integers"),
    "full-width digits": ("b.json", lambda d, m: json.dumps(_request(d, request_id="b", sample_ids=[FULL_WIDTH_ID])),
                          "not JSON integers"),
    "id with newline": ("b.json", lambda d, m: json.dumps(_request(d, request_id="b", sample_ids=[f"{m}\n"])),
                        "not JSON integers"),
    "float id": ("b.json", lambda d, m: json.dumps(_request(d, request_id="b", sample_ids=[float(m)])),
                 "not JSON integers"),
    "boolean id": ("b.json", lambda d, m: json.dumps(_request(d, request_id="b", sample_ids=[True])),
                   "not JSON integers"),
    "negative id": ("b.json", lambda d, m: json.dumps(_request(d, request_id="b", sample_ids=[-1])),
                    "not JSON integers"),
    "2**63": ("b.json", lambda d, m: json.dumps(_request(d, request_id="b", sample_ids=[2**63])),
              "not JSON integers"),
    "10**30": ("b.json", lambda d, m: json.dumps(_request(d, request_id="b", sample_ids=[10**30])),
               "not JSON integers"),
    "20-digit string": ("b.json", lambda d, m: json.dumps(_request(d, request_id="b", sample_ids=["9" * 20])),
                        "not JSON integers"),
    "5000-digit integer": ("b.json", lambda d, m: json.dumps(_request(d, request_id="b", sample_ids=[0]))
                           .replace("[0]", "[" + "9" * 5000 + "]"), "not valid JSON"),
    "NaN": ("b.json", lambda d, m: json.dumps(_request(d, request_id="b", sample_ids=[0])).replace("[0]", "[NaN]"),
            "not a JSON number"),
    "duplicate key": ("b.json", lambda d, m: json.dumps(_request(d, request_id="b", sample_ids=[m]))
                      .replace('"dataset":', '"sample_ids": [1], "dataset":'), "duplicate key"),
    "unknown key": ("b.json", lambda d, m: json.dumps(_request(d, request_id="b", sample_ids=[m], urgent=True)),
                    "unknown key 'urgent'"),
    "received_time not a time": ("b.json", lambda d, m: json.dumps(
        _request(d, request_id="b", sample_ids=[m], received_time="yesterday")), "received_time 'yesterday' must be"),
    "received_time without offset": ("b.json", lambda d, m: json.dumps(
        _request(d, request_id="b", sample_ids=[m], received_time="2026-11-27T09:30:00")), "with its offset"),
    "missing key": ("b.json", lambda d, m: json.dumps({"request_id": "b", "sample_ids": [m]}), "`dataset` is missing"),
    "path in request_id": ("b.json", lambda d, m: json.dumps(_request(d, request_id="../b", sample_ids=[m])),
                           "request_id '../b' must be"),
    "control character": ("b.json", lambda d, m: json.dumps(_request(d, request_id="b\x07", sample_ids=[m])),
                          "must be 1-128 letters"),
    "10 KB request_id": ("b.json", lambda d, m: json.dumps(_request(d, request_id="b" * 10_000, sample_ids=[m])),
                         "must be 1-128 letters"),
    "id not the file name": ("b.json", lambda d, m: json.dumps(_request(d, request_id="c", sample_ids=[m])),
                             "must match the file name"),
    "deep nesting": ("b.json", lambda d, m: "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "50 MB": ("b.json", lambda d, m: b" " * 50_000_000, "the limit is 1,048,576"),
    "not UTF-8": ("b.json", lambda d, m: b'{"request_id": "\xff"}', "not UTF-8"),
    "top-level array": ("b.json", lambda d, m: "[]", "the top level must be a JSON object"),
    "empty file": ("b.json", lambda d, m: "", "not valid JSON"),
    "empty sample_ids": ("b.json", lambda d, m: json.dumps(_request(d, request_id="b")), "`sample_ids` is empty"),
    "not a member": ("b.json", lambda d, m: json.dumps(_request(d, request_id="b", sample_ids=[10**6])),
                     "suite `erasure_requests` failed"),
    "other data version": ("b.json", lambda d, m: json.dumps(_request("0" * 64, request_id="b", sample_ids=[m])),
                           "exact data version"),
}


@pytest.fixture(scope="module")
def requests_mode(tiny_run, tmp_path_factory):
    """A clone in forget.mode: requests with one valid request a.json (a state `prepare` accepts)."""
    work = tmp_path_factory.mktemp("hostile_requests") / "repo"
    run = clone_run(tiny_run, work)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["forget"]["mode"] = "requests"
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    target = json.loads((work / "data/splits/target_train.json").read_text())
    valid = _request(target["dataset_digest"], sample_ids=target["sample_ids"][:20])
    (work / "data/requests/a.json").write_text(json.dumps(valid))
    return work, run, target["dataset_digest"], target["sample_ids"][0]


@pytest.mark.parametrize("case", list(REQUEST_CASES))
def test_hostile_request_is_refused_and_changes_nothing(requests_mode, case):
    work, run, digest, member = requests_mode
    name, content, message = REQUEST_CASES[case]
    path = work / "data/requests" / name
    _write(path, content(digest, member))
    try:
        assert_refused(work, run.env, (sys.executable, "-m", "stages.prepare"), message)
    finally:
        path.unlink()


@pytest.mark.parametrize("kind", ["fifo", "symlink to /dev/zero", "directory"])
def test_request_that_is_not_a_regular_file_is_refused_without_hanging(requests_mode, kind):
    work, run, _, _ = requests_mode
    path = work / "data/requests/b.json"
    {"fifo": lambda: os.mkfifo(path), "symlink to /dev/zero": lambda: path.symlink_to("/dev/zero"),
     "directory": lambda: path.mkdir()}[kind]()
    message = "symbolic link" if kind.startswith("symlink") else "not a regular file"
    try:
        assert_refused(work, run.env, (sys.executable, "-m", "stages.prepare"), message)
    finally:
        path.rmdir() if kind == "directory" else path.unlink()


def test_requests_while_forget_mode_is_random_are_not_ignored(copy):
    work, run = copy
    path = work / "data/requests/z.json"
    path.write_text(json.dumps(_request("d", request_id="z", sample_ids=[1])))
    try:
        assert_refused(work, run.env, (sys.executable, "-m", "stages.prepare"), "set forget.mode: requests")
    finally:
        path.unlink()


# ------------------------------------------------------------------ params (before DVC touches anything)

PARAMS_CASES = {
    "string epochs": ("train:\n  epochs: '30'", "train.epochs = '30'"),
    "negative epochs": ("train:\n  epochs: -1", "train.epochs = -1"),
    "unknown arch": ("model:\n  arch: resnet999", "model.arch = 'resnet999': unknown network"),
    "infinite learning rate": ("train:\n  max_lr: .inf", "train.max_lr = inf"),
    "infinite lambda_kl": ("remi:\n  lambda_kl: .inf", "remi.lambda_kl = inf"),
    "NaN learning rate": ("remi:\n  lr: .nan", "remi.lr = nan"),
    "zero low FPR": ("audit:\n  low_fprs: [0]", "audit.low_fprs.0 = 0"),
    "unknown section": ("remii:\n  lr: 1", "section `remii` is not a known section"),
    "raw_dir outside": ("data:\n  raw_dir: /etc", "a relative path inside the repository"),
}


def assert_params_refused(work: Path, env: dict, text: str, message: str) -> None:
    """params.yaml replaced by `text` is refused by `remi run`; then restored."""
    original = (work / "params.yaml").read_text()
    (work / "params.yaml").write_text(text)
    try:
        assert_refused(work, env, (sys.executable, "-m", "remi", "run"), message)
    finally:
        (work / "params.yaml").write_text(original)


@pytest.mark.parametrize("case", list(PARAMS_CASES))
def test_hostile_param_is_refused_before_any_output_is_touched(copy, case):
    work, run = copy
    edit, message = PARAMS_CASES[case]
    merged = overlay(parse_params((work / "params.yaml").read_text()), yaml.safe_load(edit))
    assert_params_refused(work, run.env, yaml.safe_dump(merged, sort_keys=False), message)


def test_missing_key_is_refused(copy):
    work, run = copy
    params = yaml.safe_load((work / "params.yaml").read_text())
    del params["train"]["seed"]
    assert_params_refused(work, run.env, yaml.safe_dump(params, sort_keys=False), "train.seed is missing")


@pytest.mark.parametrize(("case", "text", "message"), [
    ("alias bomb", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
     "YAML alias"),
    ("3.5 million elements", "model:\n  mlp:\n    hidden_units: [" + "1, " * 3_500_000 + "]\n", "the limit is"),
    ("not YAML", "train: [unclosed\n", "not valid YAML"),
    ("a list", "- 1\n- 2\n", "must hold a mapping of sections"),
])
def test_hostile_params_file_is_refused_quickly(copy, case, text, message):
    work, run = copy
    assert_params_refused(work, run.env, text, message)


def test_plain_dvc_repro_stops_at_check_params_with_outputs_intact(copy):
    """Without our entry point, DVC itself runs check_params first: nothing downstream is deleted."""
    work, run = copy
    original = (work / "params.yaml").read_text()
    (work / "params.yaml").write_text(original.replace("max_lr: 0.002", "max_lr: .inf"))
    before = output_hashes(work)
    try:
        result = run(sys.executable, "-m", "dvc", "repro")
        assert result.returncode != 0
        assert "train.max_lr = inf" in result.stdout + result.stderr
        assert output_hashes(work) == before
    finally:
        (work / "params.yaml").write_text(original)


# ------------------------------------------------------------------------------ raw data and models

def _corrupt_gzip(path: Path) -> None:
    path.write_bytes(b"not gzip at all")


def _gzip_bomb(path: Path) -> None:
    import gzip

    with gzip.open(path, "wb", compresslevel=1) as handle:
        block = bytes(1 << 20)
        for _ in range(600):
            handle.write(block)


def _lying_header(path: Path) -> None:
    import gzip

    path.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + (2**31).to_bytes(4, "big") * 3 + bytes(100)))


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


@pytest.mark.parametrize(("case", "damage", "message"), [
    ("corrupt gzip", _corrupt_gzip, "not a readable gzip file"),
    ("gzip bomb", _gzip_bomb, "expands past"),
    ("lying IDX header", _lying_header, "is truncated"),
    ("FIFO", _fifo, "not regular files"),
])
def test_hostile_raw_data_is_refused(copy, case, damage, message):
    work, run = copy
    raw = work / "data/raw/fashion_mnist/train-labels-idx1-ubyte.gz"
    saved = raw.read_bytes()
    damage(raw)
    try:
        assert_refused(work, run.env, (sys.executable, "-m", "stages.prepare"), message)
    finally:
        raw.unlink()
        raw.write_bytes(saved)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/remi-exploit",))


@pytest.mark.parametrize(("case", "payload", "message"), [
    ("truncated", lambda saved: saved[: len(saved) // 2], "is not a usable model file"),
    ("random bytes", lambda saved: os.urandom(4096), "is not a usable model file"),
    ("code in a pickle", lambda saved: __import__("pickle").dumps(_Exploit()), "is not a usable model file"),
])
def test_hostile_model_file_is_refused(copy, case, payload, message):
    work, run = copy
    model = work / "models/target/model.pt"
    saved = model.read_bytes()
    model.unlink()
    model.write_bytes(payload(saved))
    try:
        # unlearn starts from the target (the default starting model); train_attack no longer reads it.
        assert_refused(work, run.env, (sys.executable, "-m", "stages.unlearn", "--method", "remi"), message)
        assert not Path("/tmp/remi-exploit").exists()
    finally:
        model.unlink()
        model.write_bytes(saved)


def test_corrupt_online_shadow_outputs_are_refused_by_the_audit(copy):
    work, run = copy
    outputs = work / "models/online_shadows/shadow_000/outputs.pt"
    saved = outputs.read_bytes()
    outputs.unlink()
    outputs.write_bytes(saved[: len(saved) // 2])
    try:
        assert_refused(work, run.env, (sys.executable, "-m", "stages.audit"), "is not a usable model file")
    finally:
        outputs.unlink()
        outputs.write_bytes(saved)


def test_shadow_stage_names_its_sets_when_given_another(copy):
    work, run = copy
    assert_refused(work, run.env, (sys.executable, "-m", "stages.train_shadows", "offline"),
                   "usage: python -m stages.train_shadows {shadows | online_shadows}")


def test_venv_dvc_runs_the_stages_with_the_projects_interpreter_without_path_set_up(copy):
    """`.venv/bin/dvc repro` from a shell whose PATH has only the system python (no torch)."""
    work, run = copy
    venv = Path(sys.prefix)
    (work / ".venv").symlink_to(venv)
    env = run.env | {"PATH": "/usr/bin:/bin"}
    try:
        result = subprocess.run([str(work / ".venv/bin/dvc"), "repro", "--force", "--single-item", "gate"],
                                cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert "Gate passed" in result.stdout + result.stderr
    finally:
        (work / ".venv").unlink()
