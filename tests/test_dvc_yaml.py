"""Static checks that dvc.yaml tells the truth about what each stage reads."""

import ast
from pathlib import Path

import pytest
import yaml

from remi.catalog import UNLEARNING_METHODS
from tests.conftest import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def local_imports(module_file: Path, seen: set[Path] | None = None) -> set[Path]:
    """Repository files a module imports, transitively (package __init__ files included)."""
    seen = set() if seen is None else seen
    for node in ast.walk(ast.parse(module_file.read_text())):
        # `from remi.pipeline import tracking` imports the module remi/pipeline/tracking.py, not only the package.
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
                 if isinstance(node, ast.ImportFrom) and node.module else [])
        for name in names:
            parts = name.split(".")
            if parts[0] not in ("remi", "stages"):
                continue
            for depth in range(1, len(parts) + 1):
                base = REPO.joinpath(*parts[:depth])
                for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                    if candidate.exists() and candidate not in seen:
                        seen.add(candidate)
                        local_imports(candidate, seen)
    return seen


def stages():
    for name, stage in DVC["stages"].items():
        if "foreach" in stage:
            for item in UNLEARNING_METHODS:  # every method a profile may list, not just the default ones
                text = yaml.safe_dump(stage["do"]).replace("${item}", item)
                yield f"{name}@{item}", yaml.safe_load(text)
        else:
            yield name, stage


@pytest.mark.parametrize(("name", "stage"), list(stages()))
def test_stage_deps_cover_every_module_it_imports(name, stage):
    script = REPO / stage["cmd"].split()[2].replace(".", "/")
    script = script.with_suffix(".py")
    deps = [REPO / d for d in stage["deps"]]
    assert script in deps, f"{name}: its own script {script.name} is not a dep"
    for module in local_imports(script):
        if module.name == "__init__.py" and module.parent == REPO / "stages":
            continue
        assert any(module == d or d in module.parents for d in deps), (
            f"{name} imports {module.relative_to(REPO)} but dvc.yaml does not list it in deps")


@pytest.mark.parametrize(("name", "stage"), list(stages()))
def test_stage_params_exist_in_params_yaml(name, stage):
    for entry in stage.get("params", []):
        if entry == {"params.yaml": None}:  # the whole file (check_params)
            continue
        node = PARAMS
        for part in entry.split("."):
            assert isinstance(node, dict) and part in node, f"{name}: params `{entry}` not in params.yaml"
            node = node[part]


def test_every_stage_runs_after_check_params():
    """check_params validates before any stage deletes its outputs: all others are downstream of it."""
    assert "metrics/check_params.json" in DVC["stages"]["prepare"]["deps"]
    for name, stage in stages():
        if name not in ("check_params", "prepare"):
            assert any(str(d).startswith(("data/splits/", "models/", "metrics/audit")) for d in stage["deps"]), name


def test_no_param_key_is_named_size_or_nfiles():
    def keys(node):
        for key, value in node.items():
            yield key
            if isinstance(value, dict):
                yield from keys(value)

    assert not {"size", "nfiles"} & set(keys(PARAMS))


def _stages_reading(prefix: str) -> set[str]:
    return {name.split("@")[0] for name, stage in stages() if any(d.startswith(prefix) for d in stage["deps"])}


@pytest.mark.parametrize(("package", "readers"), [
    # Editing the audit re-runs the audit and the gate; forgetting quality reads only its own module.
    ("remi/audit/scoring.py", {"audit"}),
    ("remi/audit/report.py", {"audit"}),
    ("remi/audit/acceptance.py", {"audit", "gate"}),
    ("remi/audit/forgetting_quality.py", {"forgetting_quality"}),
    ("remi/audit/ulira.py", {"ulira"}),
    # The attack model and the audit attacks are not the target's business.
    ("remi/attacks/", {"train_shadows", "train_online_shadows", "train_attack", "unlearn", "forgetting_quality",
                       "ulira", "audit"}),
    # U-LiRA's reference models unlearn with the methods themselves.
    ("remi/unlearning/", {"unlearn", "forgetting_quality", "ulira"}),
    # The attack model trains with the same Adam.
    ("remi/networks/training.py", {"train_target", "train_shadows", "train_online_shadows", "train_attack",
                                   "unlearn", "forgetting_quality", "ulira", "audit"}),
    # Vectorised training is for reference models: the target never trains that way.
    ("remi/networks/vectorised.py", {"train_shadows", "train_online_shadows", "unlearn", "forgetting_quality",
                                     "ulira"}),
])
def test_code_edits_invalidate_only_the_stages_they_concern(package, readers):
    assert _stages_reading(package) == readers


@pytest.mark.parametrize(("stage", "unused"), [("ulira", {"retrain"}), ("forgetting_quality", set())])
def test_stages_running_every_listed_method_read_every_methods_section(stage, unused):
    """U-LiRA's references unlearn with every listed method but retraining; forgetting quality runs every
    listed method, retraining included. DVC cannot list params per `unlearn.methods`, so such a stage names
    every method's section (an unused one only re-runs it): else a baseline's changed params would leave its
    figures stale."""
    from remi.params_schema import METHOD_SECTIONS

    listed = set(DVC["stages"][stage]["params"])
    assert listed & set(METHOD_SECTIONS) == set(METHOD_SECTIONS) - unused


def test_no_stage_reads_the_original_target_except_through_the_starting_model():
    """`remi purge --target` deletes models/target once a release is the starting model: a stage that
    listed it as a dep could then never run again (DVC refuses a missing dependency)."""
    readers = {name for name, stage in stages() if "models/target" in stage.get("deps", [])}
    assert not readers
    starting = {name.partition("@")[0] for name, stage in stages() if "${starting_model_dir}" in stage.get("deps", [])}
    assert starting == {"unlearn", "forgetting_quality", "ulira", "audit"}
    assert DVC["vars"] == ["models/base/release.json:starting_model_dir"]


def test_dvc_plots_draw_every_attack_the_default_audit_runs():
    """`dvc plots show` is where the docs send a reviewer for the ROC curves: none may be missing."""
    plotted = {path for entry in DVC["plots"] for path in entry}
    assert plotted == {f"reports/audit/roc_{attack}.csv" for attack in PARAMS["audit"]["attacks"]}


def test_dvc_reads_yaml_with_libyamls_c_parser():
    """DVC reads dvc.lock with ruamel.yaml's safe loader several times per command. With libyaml's C parser
    installed (ruamel.yaml.clib, a project dependency: ruamel.yaml no longer brings it) a `dvc repro` with nothing
    to do takes 1.3 s instead of 1.9 s (BENCHMARKS.md); a dependency change that lost it would slow every DVC
    command without failing any."""
    from ruamel.yaml import YAML

    assert YAML(typ="safe").Parser.__name__ == "CParser"
