"""Sequential unlearning's pieces without the pipeline: the starting-model manifest, the move to the
last release, the forget set a method receives, and the compaction policy (the job that uses them:
test_cycle.py)."""

import json
import subprocess
import sys

import pytest
import torch

from remi.data.datasets import load_dataset
from remi.errors import UserError
from remi.networks import MODEL_FILE
from remi.networks.architectures import build_network
from remi.networks.checkpoints import ArtifactError, save_model
from remi.operations.ledger import locked
from remi.operations.sequential import prepare_starting_model
from remi.params_schema import Cycle
from remi.pipeline.compaction import compaction_reason
from remi.pipeline.params import load_params
from remi.pipeline.starting_model import (
    BASE_MANIFEST,
    BASE_WEIGHTS_DIR,
    FROM_TARGET,
    StartingModel,
    read_starting_model,
    starting_model_for,
    write_starting_model,
)
from remi.pipeline.starting_weights import load_starting_model
from remi.runtime.files import file_md5, write_json
from remi.unlearning import UnlearningTask, run_method, unlearn
from tests.conftest import REPO

PARAMS = load_params(REPO / "params.yaml")


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _params(**cycle):
    return PARAMS.model_copy(update={"cycle": Cycle(**cycle)})


def _saved_network(directory, seed=0):
    torch.manual_seed(seed)
    dataset = load_dataset(PARAMS.data.dataset, REPO / PARAMS.data.raw_dir)
    network = build_network(PARAMS.model, dataset.input_shape, dataset.num_classes)
    directory.mkdir(parents=True)
    save_model(directory, network, PARAMS.model, dataset)
    return network


def test_the_committed_manifest_matches_the_committed_params(monkeypatch):
    monkeypatch.chdir(REPO)
    if not PARAMS.cycle.sequential:  # a team that turned sequential unlearning on commits its release here
        assert read_starting_model() == FROM_TARGET


def test_a_release_round_trips_and_its_weights_are_checked_before_loading(project):
    network = _saved_network(BASE_WEIGHTS_DIR)
    start = StartingModel(3, "remi", file_md5(BASE_WEIGHTS_DIR / MODEL_FILE), (5, 7), 1)
    write_starting_model(start)
    assert read_starting_model() == start and starting_model_for("remi") == start
    assert starting_model_for("retrain") == FROM_TARGET  # retraining never starts from a trained model
    loaded = load_starting_model(start, torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), network.state_dict().values(),
                                                 strict=True))
    (BASE_WEIGHTS_DIR / MODEL_FILE).write_bytes(b"not the released model")
    with pytest.raises(ArtifactError, match=r"is not the released version 3.*dvc pull models/base/weights.dvc"):
        load_starting_model(start, torch.device("cpu"))


GOOD_MANIFEST = {"registered_version": 2, "method": "remi", "model_md5": "0" * 32, "honoured_ids": [4, 8],
                 "releases_since_retrain": 1, "original_test_accuracy": 0.875,
                 "starting_model_dir": "models/base/weights"}


@pytest.mark.parametrize("content", ['{"registered_version": 2}', "<<<<<<< HEAD\n{}\n>>>>>>> cycle\n",
                                     json.dumps(GOOD_MANIFEST | {"releases_since_retrain": "1"}),
                                     json.dumps(GOOD_MANIFEST | {"honoured_ids": ["17"]}),
                                     json.dumps(GOOD_MANIFEST | {"registered_version": True})])
def test_a_broken_manifest_is_a_clear_error(project, content):
    BASE_MANIFEST.parent.mkdir(parents=True)
    BASE_MANIFEST.write_text(content)
    with pytest.raises(UserError, match=r"is not a starting-model manifest.*git checkout models/base/release.json"):
        read_starting_model()


def test_a_manifest_as_written_reads_back(project):
    BASE_MANIFEST.parent.mkdir(parents=True)
    BASE_MANIFEST.write_text(json.dumps(GOOD_MANIFEST))
    assert read_starting_model() == StartingModel(2, "remi", "0" * 32, (4, 8), 1, 0.875)


def test_nothing_left_to_forget_gives_the_starting_model_unchanged():
    network = torch.nn.Linear(3, 2)
    empty = (torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    task = UnlearningTask(original=network, retain=empty, forget=empty, out=empty, attack=None,
                          class_gaussians=None, new_network=lambda: torch.nn.Linear(3, 2),
                          train_params=None)
    for model in (run_method("remi", task)[0], unlearn("remi", task)):  # the stage's path, forgetting quality's
        assert model is not network and torch.equal(model.weight, network.weight)


def _ledger_with_release(ledger, **detail):
    with locked(ledger) as book:
        book.append("r1", "received", submitted_time="2026-11-20T09:30:00+00:00")
        for event in ("validated", "applied"):
            book.append("r1", event)
        book.append("r1", "released", model_version=1, **detail)


def test_the_last_release_becomes_the_starting_model_tracked_by_dvc(project):
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(command, check=True)
    _saved_network(project / "models/unlearned/remi")
    honoured = [4, 8, 15]
    write_json(project / "data/splits/forget.json", {"sample_ids": honoured})
    write_json(project / "metrics/train_target.json", {"test_accuracy": 0.875})
    model_md5 = file_md5(project / "models/unlearned/remi" / MODEL_FILE)
    ledger = project / "data/ledger.jsonl"
    _ledger_with_release(ledger, method="remi", model_md5=model_md5,
                         forget_md5=file_md5(project / "data/splits/forget.json"))
    params = _params(sequential=True, compact_every=0, compact_on_gate_failure=True)
    start = prepare_starting_model(params, ledger)
    assert start == StartingModel(1, "remi", model_md5, tuple(honoured), 1, 0.875) == read_starting_model()
    assert start.directory == BASE_WEIGHTS_DIR  # dvc.yaml's ${starting_model_dir}: the target is no longer read
    assert file_md5(BASE_WEIGHTS_DIR / MODEL_FILE) == model_md5 and (project / "models/base/weights.dvc").exists()
    assert prepare_starting_model(params, ledger) == start  # the same release: nothing moves
    # Switched off: back to the target, whatever was released.
    assert prepare_starting_model(_params(sequential=False, compact_every=0, compact_on_gate_failure=True),
                                  ledger) == FROM_TARGET == read_starting_model()


def test_a_release_the_workspace_does_not_hold_is_not_started_from(project):
    _saved_network(project / "models/unlearned/remi")
    write_json(project / "data/splits/forget.json", {"sample_ids": [1]})
    ledger = project / "data/ledger.jsonl"
    _ledger_with_release(ledger, method="remi", model_md5="0" * 32,
                         forget_md5=file_md5(project / "data/splits/forget.json"))
    with pytest.raises(UserError, match="are not those of the released version 1"):
        prepare_starting_model(_params(sequential=True, compact_every=0, compact_on_gate_failure=True), ledger)
    assert not BASE_MANIFEST.exists() and not BASE_WEIGHTS_DIR.exists()


def test_a_release_recorded_before_sequential_unlearning_is_a_clear_error(project):
    ledger = project / "data/ledger.jsonl"
    _ledger_with_release(ledger)  # no method or md5s: an older job wrote it
    with pytest.raises(UserError, match="predates sequential unlearning"):
        prepare_starting_model(_params(sequential=True, compact_every=0, compact_on_gate_failure=True), ledger)
    assert not BASE_MANIFEST.exists()  # nothing written


@pytest.mark.parametrize(("policy", "releases_since_retrain", "passed", "expected"), [
    ({"sequential": False, "compact_every": 1, "compact_on_gate_failure": True}, 4, False, None),
    ({"sequential": True, "compact_every": 3, "compact_on_gate_failure": False}, 1, True, None),
    ({"sequential": True, "compact_every": 3, "compact_on_gate_failure": False}, 2, True, "every 3 releases"),
    ({"sequential": True, "compact_every": 1, "compact_on_gate_failure": False}, 0, True, "every 1 releases"),
    ({"sequential": True, "compact_every": 0, "compact_on_gate_failure": False}, 50, True, None),
    ({"sequential": True, "compact_every": 0, "compact_on_gate_failure": True}, 1, False, "failed the gate"),
    ({"sequential": True, "compact_every": 0, "compact_on_gate_failure": False}, 1, False, None),
])
def test_compaction_policy(policy, releases_since_retrain, passed, expected):
    start = StartingModel(2, "remi", "md5", (1,), releases_since_retrain)
    reason = compaction_reason(Cycle(**policy), start, passed)
    assert (reason is None) if expected is None else (expected in reason)
