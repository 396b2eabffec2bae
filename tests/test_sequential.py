"""Sequential unlearning's pieces without the pipeline: the starting-model manifest, the forget set a
method receives, and the compaction policy (the job that uses them: test_cycle.py)."""

import pytest
import torch

from remi.data.datasets import load_dataset
from remi.errors import UserError
from remi.networks import MODEL_FILE
from remi.networks.architectures import build_network
from remi.networks.checkpoints import ArtifactError, save_model
from remi.operations.ledger import locked
from remi.operations.sequential import compaction_reason, prepare_starting_model
from remi.params_schema import Cycle
from remi.pipeline.params import load_params
from remi.pipeline.starting_model import (
    BASE_MANIFEST,
    BASE_WEIGHTS_DIR,
    TARGET,
    StartingModel,
    load_starting_model,
    read_starting_model,
    write_starting_model,
)
from remi.runtime.files import file_md5
from remi.unlearning import UnlearningTask, run_method
from tests.conftest import REPO


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_committed_manifest_starts_from_the_target(monkeypatch):
    monkeypatch.chdir(REPO)
    assert read_starting_model() == TARGET


def test_a_release_round_trips_and_its_weights_are_checked_before_loading(project):
    params = load_params(REPO / "params.yaml")
    dataset = load_dataset(params.data.dataset, REPO / params.data.raw_dir)
    network = build_network(params.model, dataset.input_shape, dataset.num_classes)
    BASE_WEIGHTS_DIR.mkdir(parents=True)
    save_model(BASE_WEIGHTS_DIR, network, params.model, dataset)
    start = StartingModel(3, "remi", file_md5(BASE_WEIGHTS_DIR / MODEL_FILE), (5, 7), 1)
    write_starting_model(start)
    assert read_starting_model() == start
    loaded = load_starting_model(torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), network.state_dict().values(),
                                                 strict=True))
    (BASE_WEIGHTS_DIR / MODEL_FILE).write_bytes(b"not the released model")
    with pytest.raises(ArtifactError, match=r"is not the released version 3.*dvc pull models/base/weights.dvc"):
        load_starting_model(torch.device("cpu"))


def test_a_broken_manifest_is_a_clear_error(project):
    BASE_MANIFEST.parent.mkdir(parents=True)
    BASE_MANIFEST.write_text('{"registered_version": 2}')
    with pytest.raises(UserError, match=r"is not a starting-model manifest.*git checkout models/base/release.json"):
        read_starting_model()


def test_nothing_left_to_forget_returns_the_starting_model_unchanged():
    network = torch.nn.Linear(3, 2)
    empty = (torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    task = UnlearningTask(original=network, retain=empty, forget=empty, out=empty, attack=None,
                          class_gaussians=None, new_network=lambda: torch.nn.Linear(3, 2),
                          train_params=None)
    model, seconds = run_method("remi", task)
    assert model is not network and seconds == 0.0
    assert torch.equal(model.weight, network.weight)


def _params(**cycle):
    return load_params(REPO / "params.yaml").model_copy(update={"cycle": Cycle(**cycle)})


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
    reason = compaction_reason(_params(**policy), start, passed)
    assert (reason is None) if expected is None else (expected in reason)


def test_a_release_recorded_before_sequential_unlearning_is_a_clear_error(project):
    ledger = project / "data/ledger.jsonl"
    with locked(ledger) as book:
        book.append("r1", "received", submitted_time="2026-11-20T09:30:00+00:00")
        for event in ("validated", "applied"):
            book.append("r1", event)
        book.append("r1", "released", model_version=1)  # no method or md5s: an older job wrote it
    params = _params(sequential=True, compact_every=0, compact_on_gate_failure=True)
    with pytest.raises(UserError, match="predates sequential unlearning"):
        prepare_starting_model(params, ledger)
    assert not BASE_MANIFEST.exists()  # nothing written
