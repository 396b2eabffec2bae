import copy
import re

import pytest

from remi.errors import ParamsError
from remi.pipeline.params import apply_profile, load_params, overlay, validate
from tests.conftest import REPO


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("forget", "fraction", 0.0, "forget.fraction = 0.0: Input should be greater than 0"),
    ("forget", "fraction", 1.5, "forget.fraction = 1.5"),
    ("shadows", "count", 0, "shadows.count = 0: Input should be greater than or equal to 2"),
    ("unlearn", "methods", ["retrain", "magic"], "unlearn.methods.1 = 'magic': unknown unlearning method 'magic'"),
    ("unlearn", "methods", ["remi"], "must include retrain"),
    ("forget", "mode", "some", "forget.mode = 'some'"),
    ("train", "epochs", -3, "train.epochs = -3"),
    ("model", "arch", "resnet999", "model.arch = 'resnet999': unknown network 'resnet999'; known: small_cnn"),
    ("data", "dataset", "letter", "model.arch small_cnn convolves images, but data.dataset letter holds feature "
                                  "vectors: use mlp"),
    ("audit", "retain_samples", 20_000,
     "audit.retain_samples + audit.fit_samples = 22000, but the retain set holds 9000"),
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

    typed = validate(params)
    assert typed.remi.lambda_kl == params["remi"]["lambda_kl"] and typed.model.model_dump() == params["model"]
    for profile in ("tiny", "compare"):
        validate(overlay(params, yaml.safe_load((REPO / "profiles" / f"{profile}.yaml").read_text())))


def test_cross_section_checks_are_listed_together(params):
    bad = copy.deepcopy(params)
    bad["attack"]["holdout_shadows"] = bad["shadows"]["count"]
    bad["acceptance"]["max_auc_gap"]["lira"] = 0.03
    bad["audit"]["attacks"] = [a for a in bad["audit"]["attacks"] if a != "lira"]
    bad["online_shadows"]["count"] = 2
    with pytest.raises(ParamsError) as error:
        validate(bad)
    assert "attack.holdout_shadows must be smaller than shadows.count" in str(error.value)
    assert "online_shadows.count is 2, it needs at least 4: they are U-LiRA's reference models" in str(error.value)
    assert "acceptance.max_auc_gap names attacks the audit does not run: ['lira']" in str(error.value)


def test_a_list_of_a_million_problems_is_one_short_message(params):
    long_list, many_keys = copy.deepcopy(params), copy.deepcopy(params)
    long_list["model"]["mlp"] = {"hidden_units": [0] * 1_000_000}
    many_keys["splits"] = {f"k{i}": i for i in range(100)}
    with pytest.raises(ParamsError, match="List should have at most 16 items") as error:
        validate(long_list)
    assert len(str(error.value)) < 1000
    with pytest.raises(ParamsError, match=r"splits.k18 is not a known key\n  - \.\.\. and 81 more$") as error:
        validate(many_keys)


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("train", "max_lr", float("inf"), "train.max_lr = inf: Input should be a finite number"),
    ("remi", "lambda_kl", float("inf"), "remi.lambda_kl = inf"),
    ("remi", "lr", float("nan"), "remi.lr = nan"),
    ("train", "epochs", "30", "train.epochs = '30'"),
    ("train", "epochs", 10**30, "train.epochs = 1000000000000000000000000000000"),
    ("data", "raw_dir", "/etc", "data.raw_dir = '/etc': must be a relative path inside the repository"),
    ("data", "raw_dir", "data/../../etc", "a relative path inside the repository"),
    ("unlearn", "methods", [["retrain"]], "unlearn.methods.0 = ['retrain']: Input should be a valid string"),
    ("unlearn", "methods", ["retrain", "remi", "remi"], "unlearn.methods = ['retrain', 'remi', 'remi']: lists a name"),
    ("audit", "attacks", [{"a": 1}], "audit.attacks.0 = {'a': 1}: Input should be a valid string"),
    ("gate", "registered_model", "x' or name='y", "gate.registered_model = \"x' or name='y\": String should match"),
    ("audit", "low_fprs", [0], "audit.low_fprs.0 = 0: Input should be greater than 0"),
    ("train", "epochs", 12.0, "train.epochs = 12.0: Input should be a valid integer"),
    ("train", "epochs", True, "train.epochs = True: Input should be a valid integer"),
    ("acceptance", "max_auc_gap", {"magic": 0.1}, "acceptance.max_auc_gap.key = 'magic': unknown audit attack"),
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


PROFILES = sorted(path.name for path in (REPO / "profiles").glob("*.yaml"))


@pytest.mark.parametrize("profile", PROFILES)
def test_a_profile_applied_keeps_every_comment_and_sets_exactly_the_overlay(tmp_path, profile):
    """Every profile, in the fast run: one broken by a params change fails validation here, not only in the slow
    tests. params.yaml's comments document every key: `remi profile` must not lose them, and the file it writes
    must hold the same values as the overlay that was validated."""
    assert len(PROFILES) >= 5  # the profiles were found
    import yaml

    params = tmp_path / "params.yaml"
    params.write_bytes((REPO / "params.yaml").read_bytes())
    apply_profile(params, REPO / "profiles" / profile)
    written = params.read_text()
    expected = overlay(yaml.safe_load((REPO / "params.yaml").read_text()),
                       yaml.safe_load((REPO / "profiles" / profile).read_text()))
    assert yaml.safe_load(written) == expected
    comments = [line[line.index("#"):] for line in (REPO / "params.yaml").read_text().splitlines() if "#" in line]
    assert len(comments) > 50 and all(comment in written for comment in comments)
    # The first line names the profile: by its absolute path, as it lies outside this params file's project.
    assert written.startswith(f"# remi profile {REPO / 'profiles' / profile}: its values replace this file's")


def test_profiles_applied_in_turn_are_named_in_order_and_set_both_overlays(tmp_path):
    import yaml

    project = tmp_path / "project"
    (project / "profiles").mkdir(parents=True)
    params = project / "params.yaml"
    params.write_bytes((REPO / "params.yaml").read_bytes())
    for name in ("tiny.yaml", "letter.yaml"):
        (project / "profiles" / name).write_bytes((REPO / "profiles" / name).read_bytes())
        apply_profile(params, project / "profiles" / name)
    first, second = params.read_text().splitlines()[:2]
    assert first.startswith("# remi profile profiles/letter.yaml: ")
    assert second.startswith("# remi profile profiles/tiny.yaml: ")
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    tiny, letter = (yaml.safe_load((REPO / "profiles" / name).read_text()) for name in ("tiny.yaml", "letter.yaml"))
    assert yaml.safe_load(params.read_text()) == overlay(overlay(base, tiny), letter)


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    """PyYAML alone would keep the last of the two silently, so an edit made above an old line would not take
    effect (and DVC would refuse the file only later, when `dvc repro` reads it)."""
    lines = (REPO / "params.yaml").read_text().splitlines(keepends=True)
    section = next(number for number, line in enumerate(lines) if line.startswith("train:"))
    epochs = next(number for number, line in enumerate(lines) if number > section and line.startswith("  epochs:"))
    twice = tmp_path / "params.yaml"
    twice.write_text("".join([*lines[:section + 1], "  epochs: 1\n", *lines[section + 1:]]))
    # 1-based lines: the added one follows `train:`, and the original moved down by one.
    with pytest.raises(ParamsError, match=rf"{re.escape(str(twice))} gives the key epochs twice, at lines "
                                          rf"{section + 2} and {epochs + 2}: keep one of them"):
        load_params(twice)
    sections = tmp_path / "sections.yaml"
    sections.write_text("".join(lines) + "train:\n  epochs: 1\n")
    with pytest.raises(ParamsError, match="gives the key train twice"):
        load_params(sections)


def test_a_profile_with_a_key_given_twice_changes_nothing(tmp_path):
    """The user gets one message, not a traceback, and params.yaml stays as it was."""
    params = tmp_path / "params.yaml"
    params.write_bytes((REPO / "params.yaml").read_bytes())
    profile = tmp_path / "twice.yaml"
    profile.write_text("train:\n  epochs: 2\n  epochs: 3\n")
    with pytest.raises(ParamsError, match=r"twice.yaml gives the key epochs twice, at lines 2 and 3"):
        apply_profile(params, profile)
    assert params.read_bytes() == (REPO / "params.yaml").read_bytes()
