import copy
import re

import pytest

from remi.errors import ParamsError
from remi.params import load_params, overlay, validate


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


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("train", "max_lr", float("inf"), "train.max_lr = inf: expected a number > 0"),
    ("remi", "lambda_kl", float("inf"), "remi.lambda_kl = inf"),
    ("remi", "lr", float("nan"), "remi.lr = nan"),
    ("train", "epochs", "30", "train.epochs = '30'"),
    ("train", "epochs", 10**30, "train.epochs = 1000000000000000000000000000000"),
    ("data", "raw_dir", "/etc", "a relative path inside the repository"),
    ("data", "raw_dir", "data/../../etc", "a relative path inside the repository"),
    ("unlearn", "methods", [["retrain"]], "a non-empty list of distinct method names"),
    ("audit", "attacks", [{"a": 1}], "a non-empty list of distinct attack names"),
    ("gate", "registered_model", "x' or name='y", "a registered-model name"),
    ("audit", "low_fprs", [0], "audit.low_fprs = [0]"),
])
def test_hostile_values_are_rejected(params, section, key, value, message):
    bad = copy.deepcopy(params)
    bad[section][key] = value
    with pytest.raises(ParamsError, match=re.escape(message)):
        validate(bad)


def test_an_unknown_section_and_a_huge_value_give_short_messages(params):
    bad = copy.deepcopy(params) | {"remii": {"lr": 1}}
    bad["model"]["mlp"] = {"hidden_units": [0] * 3_500_000}
    with pytest.raises(ParamsError) as error:
        validate(bad)
    assert "section `remii` is not a known section" in str(error.value)
    assert len(str(error.value)) < 2000 and "characters)" in str(error.value)


def test_yaml_aliases_and_oversized_files_are_refused_before_parsing(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text('a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
                    'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n')
    with pytest.raises(ParamsError, match="YAML alias"):
        load_params(bomb)
    big = tmp_path / "big.yaml"
    big.write_text("data:\n  x: [" + "0, " * 3_500_000 + "]\n")
    with pytest.raises(ParamsError, match="the limit is"):
        load_params(big)
