"""What guards the original target's purge without the stack (the purge itself, against S3 and the
team MLflow server: test_cycle.py): it is refused while the pipeline still starts from the target,
and once purged nothing trains it again or goes back to starting from it."""

import pytest

from remi.errors import UserError
from remi.operations.sequential import prepare_starting_model
from remi.operations.target_purge import purge_target
from remi.params_schema import Cycle
from remi.pipeline.layout import TARGET_PURGE_RECORD
from remi.pipeline.params import load_params
from remi.pipeline.starting_model import FROM_TARGET, write_starting_model
from remi.runtime.files import write_json
from tests.conftest import REPO


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_target_is_not_purged_while_the_pipeline_starts_from_it(project):
    write_starting_model(FROM_TARGET)
    with pytest.raises(UserError, match="still starts from the original target"):
        purge_target(apply=True)


def test_a_purged_target_is_never_trained_again(project):
    from stages.train_target import main

    write_json(TARGET_PURGE_RECORD, {"purged_time": "2026-11-28T03:00:00+00:00"})
    with pytest.raises(UserError, match="would re-create the influence of every erased sample"):
        main()
    assert not (project / "models/target").exists()


def test_sequential_unlearning_stays_on_once_the_target_is_purged(project):
    write_json(TARGET_PURGE_RECORD, {"purged_time": "2026-11-28T03:00:00+00:00"})
    params = load_params(REPO / "params.yaml")
    off = params.model_copy(update={"cycle": Cycle(sequential=False, compact_every=5, compact_on_gate_failure=True)})
    with pytest.raises(UserError, match=r"Set cycle\.sequential: true"):
        prepare_starting_model(off, project / "ledger.jsonl")


def test_the_purge_freezes_train_target_in_dvc_yaml_once_keeping_its_comments(project):
    import shutil

    import yaml

    from remi.operations.target_purge import _freeze_target_stage

    shutil.copy(REPO / "dvc.yaml", project / "dvc.yaml")
    _freeze_target_stage()
    frozen = (project / "dvc.yaml").read_text()
    stages = yaml.safe_load(frozen)["stages"]
    assert stages["train_target"]["frozen"] is True and not any(s.get("frozen") for n, s in stages.items()
                                                                  if n != "train_target")
    assert frozen.replace("    frozen: true  # `remi purge --target` deleted its output on purpose: never re-run it\n",
                          "") == (REPO / "dvc.yaml").read_text()
    _freeze_target_stage()
    assert (project / "dvc.yaml").read_text() == frozen
