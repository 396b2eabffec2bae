import copy

import pytest

from remi.errors import ParamsError
from remi.params import overlay, validate


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("forget", "fraction", 0.0, "forget.fraction = 0.0: expected a number in (0, 1)"),
    ("forget", "fraction", 1.5, "forget.fraction = 1.5"),
    ("shadows", "count", 0, "shadows.count = 0: expected an integer >= 2"),
    ("unlearn", "methods", ["retrain", "magic"], "unknown ['magic']; known: ['finetune', 'fisher', "),
    ("unlearn", "methods", ["remi"], "must include retrain"),
    ("forget", "mode", "some", "forget.mode = 'some'"),
    ("train", "epochs", -3, "train.epochs = -3"),
    ("model", "arch", "resnet999", "unknown 'resnet999'"),
])
def test_invalid_params_are_rejected_with_the_key_named(params, section, key, value, message):
    bad = copy.deepcopy(params)
    bad[section][key] = value
    with pytest.raises(ParamsError) as error:
        validate(bad)
    assert message in str(error.value)


def test_unknown_and_missing_keys_are_reported(params):
    bad = copy.deepcopy(params)
    bad["train"]["epoch"] = bad["train"].pop("epochs")
    with pytest.raises(ParamsError) as error:
        validate(bad)
    assert "train.epochs is missing" in str(error.value)
    assert "train.epoch is not a known key" in str(error.value)


def test_default_params_and_the_tiny_profile_are_valid(params):
    import yaml

    from tests.conftest import REPO

    validate(params)
    for profile in ("tiny", "compare"):
        validate(overlay(params, yaml.safe_load((REPO / "profiles" / f"{profile}.yaml").read_text())))
