"""Load params.yaml and reject bad values before any training starts."""

import math
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from remi.catalog import AUDIT_ATTACKS, DATASETS, LEAKAGE_ESTIMATORS, NETWORKS, REFERENCE, UNLEARNING_METHODS
from remi.errors import ParamsError, UserError
from remi.io import atomic_write, read_user_file

Check = Callable[[Any], bool]
MAX_PARAMS_BYTES = 256 * 1024  # params.yaml is ~6 KB; anything near this is not a params file
MAX_INT = 2**31 - 1  # counts, sizes and seeds: larger values only overflow somewhere downstream
SHOWN_CHARS = 80  # of an offending value, in error messages


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value <= MAX_INT


def _number(value: Any) -> bool:
    """A finite int or float: .inf and .nan would train NaN models."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(value: Any) -> bool:
    return _int(value) and value > 0


def non_negative_int(value: Any) -> bool:
    return _int(value) and value >= 0


def positive_number(value: Any) -> bool:
    return _number(value) and value > 0


def non_negative_number(value: Any) -> bool:
    return _number(value) and value >= 0


def name_list(value: Any) -> bool:
    """A non-empty list of distinct names."""
    return (isinstance(value, list) and len(value) > 0 and all(isinstance(x, str) for x in value)
            and len(set(value)) == len(value))


def repository_path(value: Any) -> bool:
    """A relative path that stays inside the repository (no absolute path, no `..`)."""
    if not isinstance(value, str) or not value or "\0" in value:
        return False
    path = PurePosixPath(value)
    return not path.is_absolute() and ".." not in path.parts


def open_unit_interval(value: Any) -> bool:
    return positive_number(value) and value < 1


def one_of(*choices: str) -> Check:
    def check(value: Any) -> bool:
        return value in choices

    check.__doc__ = f"one of {list(choices)}"
    return check


def unit_interval(value: Any) -> bool:
    return non_negative_number(value) and value <= 1


def positive_ints(value: Any) -> bool:
    return isinstance(value, list) and len(value) > 0 and all(positive_int(x) for x in value)


def mapping(**checks: Check) -> Check:
    """A dict with exactly these keys, each passing its check (a network's options)."""
    def check(value: Any) -> bool:
        return isinstance(value, dict) and set(value) == set(checks) and all(
            checks[key](value[key]) for key in checks)

    return check


# The keys of the methods built on gradient_methods._two_set_fine_tune.
TWO_SET_FINE_TUNE: dict[str, tuple[Check, str]] = {
    "steps": (positive_int, "an integer > 0"), "batch_size": (positive_int, "an integer > 0"),
    "lr": (positive_number, "a number > 0"), "retain_weight": (unit_interval, "a number in [0, 1]"),
    "seed": (non_negative_int, "an integer >= 0")}

GOALS = ("min_target_attack_auc", "max_auc_gap", "max_forget_accuracy_gap",
         "max_test_accuracy_drop", "max_seconds_ratio")

# section -> key -> (check, what a valid value is)
SCHEMA: dict[str, dict[str, tuple[Check, str]]] = {
    "data": {"dataset": (lambda v: isinstance(v, str), "a dataset name"),
             "raw_dir": (repository_path, "a relative path inside the repository, e.g. data/raw/fashion_mnist")},
    "splits": {key: (positive_int, "an integer > 0") for key in
               ("target_train", "out", "audit_holdout", "test", "shadow_pool")}
    | {"seed": (non_negative_int, "an integer >= 0")},
    "forget": {"mode": (one_of("random", "class", "requests"), "random, class or requests"),
               "fraction": (open_unit_interval, "a number in (0, 1)"),
               "class_label": (non_negative_int, "a class index >= 0"),
               "seed": (non_negative_int, "an integer >= 0")},
    "model": {"arch": (lambda v: isinstance(v, str), "a network name"),
              "small_cnn": (mapping(conv1_channels=positive_int, conv2_channels=positive_int,
                                    hidden_units=positive_int),
                            "conv1_channels, conv2_channels, hidden_units: integers > 0"),
              "mlp": (mapping(hidden_units=positive_ints), "hidden_units: a non-empty list of integers > 0"),
              "resnet18": (mapping(width=positive_int), "width: an integer > 0"),
              "resnet9": (mapping(width=positive_int), "width: an integer > 0")},
    "train": {"epochs": (positive_int, "an integer > 0"),
              "batch_size": (positive_int, "an integer > 0"),
              "max_lr": (positive_number, "a number > 0"),
              "seed": (non_negative_int, "an integer >= 0")},
    "shadows": {"count": (lambda v: positive_int(v) and v >= 2, "an integer >= 2"),
                "seed": (non_negative_int, "an integer >= 0")},
    "attack": {"hidden_units": (positive_int, "an integer > 0"),
               "epochs": (positive_int, "an integer > 0"),
               "batch_size": (positive_int, "an integer > 0"),
               "lr": (positive_number, "a number > 0"),
               "holdout_shadows": (positive_int, "an integer > 0"),
               "seed": (non_negative_int, "an integer >= 0")},
    "unlearn": {"methods": (name_list, "a non-empty list of distinct method names")},
    "gate": {"method": (lambda v: isinstance(v, str), "a method name"),
             "registered_model": (lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}", v),
                                  "a registered-model name: letters, digits, '.', '_', '-'"),
             "max_auc_gap": (lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v)
                             and all(non_negative_number(x) for x in v.values()),
                             "a mapping attack -> number >= 0"),
             "max_forget_accuracy_gap": (non_negative_number, "a number >= 0"),
             "max_test_accuracy_drop": (non_negative_number, "a number >= 0")},
    "forgetting_quality": {"models": (lambda v: positive_int(v) and v >= 2, "an integer >= 2"),
                           "seed": (non_negative_int, "an integer >= 0"),
                           "delta": (lambda v: non_negative_number(v) and v < 0.5, "a number in [0, 0.5)"),
                           "bin_width": (positive_number, "a number > 0")},
    "retrain": {"seed": (non_negative_int, "an integer >= 0")},
    "finetune": {"epochs": (positive_int, "an integer > 0"), "batch_size": (positive_int, "an integer > 0"),
                 "lr": (positive_number, "a number > 0"), "seed": (non_negative_int, "an integer >= 0")},
    "neggrad_plus": TWO_SET_FINE_TUNE,
    "random_label": TWO_SET_FINE_TUNE,
    "salun": TWO_SET_FINE_TUNE | {"saliency_fraction": (open_unit_interval, "a number in (0, 1)")},
    "scrub": {"steps": (positive_int, "an integer > 0"), "forget_steps": (non_negative_int, "an integer >= 0"),
              "batch_size": (positive_int, "an integer > 0"), "lr": (positive_number, "a number > 0"),
              "seed": (non_negative_int, "an integer >= 0")},
    "fisher": {"alpha": (positive_number, "a number > 0"), "max_variance": (positive_number, "a number > 0"),
               "samples": (positive_int, "an integer > 0"), "batch_size": (positive_int, "an integer > 0"),
               "seed": (non_negative_int, "an integer >= 0")},
    "ssd": {"alpha": (positive_number, "a number > 0"), "dampening": (positive_number, "a number > 0"),
            "samples": (positive_int, "an integer > 0"), "batch_size": (positive_int, "an integer > 0"),
            "seed": (non_negative_int, "an integer >= 0")},
    "remi": {"estimator": (one_of(*LEAKAGE_ESTIMATORS), f"one of {', '.join(LEAKAGE_ESTIMATORS)}"),
             "lr": (positive_number, "a number > 0"),
             "trainable_layers": (non_negative_int, "an integer >= 0"),
             "max_steps": (positive_int, "an integer > 0"),
             "batch_size": (positive_int, "an integer > 0"),
             "lambda_distill": (non_negative_number, "a number >= 0"),
             "lambda_ce": (non_negative_number, "a number >= 0"),
             "lambda_mi": (non_negative_number, "a number >= 0"),
             "lambda_kl": (non_negative_number, "a number >= 0"),
             "check_every": (positive_int, "an integer > 0"),
             "target_auc": (unit_interval, "a number in [0, 1]"),
             "auc_tolerance": (unit_interval, "a number in [0, 1]"),
             "accuracy_tolerance": (unit_interval, "a number in [0, 1]"),
             "seed": (non_negative_int, "an integer >= 0")},
    "audit": {"attacks": (name_list, "a non-empty list of distinct attack names"),
              "low_fprs": (lambda v: isinstance(v, list) and len(v) > 0 and all(open_unit_interval(x) for x in v),
                           "a non-empty list of numbers in (0, 1)"),
              "retain_samples": (positive_int, "an integer > 0"),
              "fit_samples": (positive_int, "an integer > 0"),
              "population_samples": (positive_int, "an integer > 0"),
              "rmia_offline_a": (unit_interval, "a number in [0, 1]"),
              "seed": (non_negative_int, "an integer >= 0"),
              "goals": (lambda v: isinstance(v, dict) and set(v) == set(GOALS)
                        and all(non_negative_number(x) for x in v.values()),
                        f"a mapping of {', '.join(GOALS)} to numbers >= 0")},
}


def shown(value: Any) -> str:
    """A value as it goes into an error message: its repr, cut short (a value may be megabytes)."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text):,} characters)"


def shown_key(key: Any) -> str:
    """A key as written in params.yaml if it is a short printable string, else as shown()."""
    return key if isinstance(key, str) and key.isprintable() and len(key) <= SHOWN_CHARS else shown(key)


def validate(params: dict[str, Any]) -> None:
    """Raise ParamsError listing every missing, unknown or out-of-range key."""
    problems = [f"section `{shown_key(section)}` is not a known section (known: {', '.join(SCHEMA)})"
                for section in params if section not in SCHEMA]
    for section, keys in SCHEMA.items():
        values = params.get(section)
        if not isinstance(values, dict):
            problems.append(f"section `{section}` is missing")
            continue
        for key, (check, expected) in keys.items():
            if key not in values:
                problems.append(f"{section}.{key} is missing (expected {expected})")
            elif not check(values[key]):
                problems.append(f"{section}.{key} = {shown(values[key])}: expected {expected}")
        problems += [f"{section}.{shown_key(key)} is not a known key" for key in values if key not in keys]
    problems += _cross_checks(params) if not problems else []
    if problems:
        raise ParamsError("Invalid params.yaml:\n  - " + "\n  - ".join(problems))


def _cross_checks(params: dict[str, Any]) -> list[str]:
    problems = []
    unknown = [m for m in params["unlearn"]["methods"] if m not in UNLEARNING_METHODS]
    if unknown:
        problems.append(f"unlearn.methods: unknown {unknown}; known: {sorted(UNLEARNING_METHODS)}")
    if len(set(params["unlearn"]["methods"])) != len(params["unlearn"]["methods"]):
        problems.append("unlearn.methods lists a method twice")
    if REFERENCE not in params["unlearn"]["methods"]:
        problems.append("unlearn.methods must include retrain: every audit gap is measured to it")
    if params["data"]["dataset"] not in DATASETS:
        problems.append(f"data.dataset: unknown {params['data']['dataset']!r}; known: {sorted(DATASETS)}")
    if params["model"]["arch"] not in NETWORKS:
        problems.append(f"model.arch: unknown {params['model']['arch']!r}; known: {sorted(NETWORKS)}")
    unknown_attacks = [a for a in params["audit"]["attacks"] if a not in AUDIT_ATTACKS]
    if unknown_attacks:
        problems.append(f"audit.attacks: unknown {unknown_attacks}; known: {sorted(AUDIT_ATTACKS)}")
    ungated = [a for a in params["gate"]["max_auc_gap"] if a not in params["audit"]["attacks"]]
    if ungated:
        problems.append(f"gate.max_auc_gap names attacks the audit does not run: {ungated}")
    if params["gate"]["method"] not in params["unlearn"]["methods"] or params["gate"]["method"] == REFERENCE:
        problems.append("gate.method must be one of unlearn.methods other than retrain")
    audit = params["audit"]
    if audit["fit_samples"] + audit["population_samples"] > params["splits"]["test"]:
        problems.append(f"audit.fit_samples + audit.population_samples = "
                        f"{audit['fit_samples'] + audit['population_samples']} test samples, "
                        f"but splits.test is {params['splits']['test']}")
    if params["attack"]["holdout_shadows"] >= params["shadows"]["count"]:
        problems.append("attack.holdout_shadows must be smaller than shadows.count")
    return problems


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors' aliases: a handful of nested aliases expand to billions of nodes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ParamsError(f"params.yaml uses a YAML alias (*{event.anchor}) at line "
                              f"{event.start_mark.line + 1}: write the values out instead.")
        return super().compose_node(parent, index)


def parse_params(text: bytes | str, source: str = "params.yaml") -> dict[str, Any]:
    """The params mapping in `text`, parsed without aliases; not yet validated."""
    try:
        params = yaml.load(text, Loader=_NoAliasLoader)
    except yaml.YAMLError as error:
        raise ParamsError(f"{source} is not valid YAML: {str(error)[:500]}") from error
    except RecursionError as error:
        raise ParamsError(f"{source} nests too deeply to be a params file.") from error
    if not isinstance(params, dict):
        raise ParamsError(f"{source} must hold a mapping of sections.")
    return params


def read_params_file(path: str | Path) -> dict[str, Any]:
    """Parse a params file (or a profile) with the size bound every user file gets."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found: run from the repository root.")
    try:
        text = read_user_file(path, MAX_PARAMS_BYTES, "Params file")
    except UserError as error:
        raise ParamsError(str(error)) from error
    return parse_params(text, str(path))


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read and validate the whole params file (every stage does, so a bad value stops the run early)."""
    params = read_params_file(path)
    validate(params)
    return params


def overlay(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` merged in, section by section (nested dicts merge, values replace)."""
    merged = dict(base)
    for key, value in overrides.items():
        nested = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = overlay(base[key], value) if nested else value
    return merged


def apply_profile(params_path: Path, profile_path: Path) -> None:
    """Rewrite a params file with a profile overlaid; the result is validated first."""
    merged = overlay(read_params_file(params_path), read_params_file(profile_path))
    validate(merged)
    text = yaml.safe_dump(merged, sort_keys=False)
    atomic_write(params_path, lambda tmp: tmp.write_text(text))
