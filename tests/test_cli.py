"""Every `remi` subcommand, through the installed console script (ui: tests/test_mlflow_ui.py; request
and cycle: tests/test_ledger.py, tests/test_cycle.py; run: the pipeline tests; seeds and compare
--seeds: tests/test_profiles.py; reap-runs: tests/test_orphaned_runs.py)."""

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from remi.audit.forgetting_anatomy import ONLINE_ROW, SAME_SAMPLES_ROW, SHADOWS_ROW
from remi.benchmarks.threads import BUSY_LOOP
from remi.cli import build_parser
from remi.runtime.precision import has_native_bfloat16
from tests.conftest import REMI, REPO, clone_run

SUBCOMMANDS = {"run", "profile", "seeds", "compare", "ablation", "fq-anatomy", "exposure", "benchmark", "summary", "ui",
               "reap-runs", "request", "cycle", "stack", "purge"}


def remi(*args: str, cwd=REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([REMI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_help_lists_every_subcommand_and_a_wrong_call_exits_2():
    result = remi("--help")
    assert result.returncode == 0
    parser_commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert parser_commands == SUBCOMMANDS and all(name in result.stdout for name in SUBCOMMANDS)
    wrong = remi("summary", "--no-such-flag")
    assert wrong.returncode == 2 and "unrecognized arguments: --no-such-flag" in wrong.stderr


def _project(tmp_path):
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    return tmp_path


def test_profile_rewrites_params_and_a_bad_profile_changes_nothing(tmp_path):
    project = _project(tmp_path)
    (project / "sub").mkdir()
    # From a subdirectory, like dvc: the project is found, and a path given is relative to where it was typed.
    result = remi("profile", "../profiles/tiny.yaml", cwd=project / "sub")
    assert result.returncode == 0, result.stderr
    written = (project / "params.yaml").read_text()
    assert "target_train: 1000" in written and "# members of the target model" in written  # comments kept
    assert written.startswith("# remi profile profiles/tiny.yaml: ")  # named from the project, not from sub/
    before = (project / "params.yaml").read_bytes()
    (project / "bad.yaml").write_text("train:\n  epochs: 2.5\n")
    refused = remi("profile", "bad.yaml", cwd=project)
    assert refused.returncode == 2 and "train.epochs = 2.5: Input should be a valid integer" in refused.stderr
    assert "Traceback" not in refused.stderr and (project / "params.yaml").read_bytes() == before


@pytest.mark.parametrize("command", ["ablation", "fq-anatomy"])
def test_an_unknown_ablation_variant_is_named_with_where_the_choices_are_before_any_work(tmp_path, command):
    result = remi(command, "--variants", "default", "no such variant", cwd=_project(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "unknown ablation variant(s) 'no such variant'" in result.stderr and "remi ablation --list" in result.stderr
    assert not (tmp_path / "reports").exists() and not (tmp_path / "metrics").exists()


def test_ablation_list_shows_every_variant_under_its_question_with_its_switches_and_runs_nothing(tmp_path):
    from remi.audit.ablation_variants import GROUPS, VARIANTS

    result = remi("ablation", "--list", cwd=_project(tmp_path))
    assert result.returncode == 0, result.stderr
    # No name in two groups: the flat table would keep only the last one's switches.
    assert sum(len(group.variants) for group in GROUPS) == len(VARIANTS)
    lines = result.stdout.splitlines()
    for group in GROUPS:
        heading = lines.index(f"{group.question}:")
        shown = lines[heading + 1:heading + 1 + len(group.variants)]
        assert [line.split("'")[1] for line in shown] == list(group.variants)
    assert any("'no MI term'" in line and line.endswith("remi.lambda_mi=0.0") for line in lines)
    assert not (tmp_path / "reports").exists() and not (tmp_path / "metrics").exists()


@pytest.mark.parametrize("profile", [None, "mnist_5k", "letter"])
def test_every_ablation_variant_is_valid_params_on_the_default_and_the_mlp_profiles(profile):
    from remi.audit.ablation_variants import VARIANTS
    from remi.pipeline.params import overlay, read_params_file, validate

    base = read_params_file(REPO / "params.yaml")
    if profile is not None:
        base = overlay(base, read_params_file(REPO / f"profiles/{profile}.yaml"))
    # A misspelt key or a value out of range would otherwise surface only after `remi run`, mid-ablation.
    for name, switches in VARIANTS.items():
        validate(overlay(base, {"remi": switches}), source=f"variant {name!r}")


@pytest.mark.parametrize(("arguments", "message"), [
    (["ui", "--host", ""], "is not a loopback address"),  # "" would listen on every interface
    (["ui", "--host", "0.0.0.0"], "the UI is served on this machine only"),
    (["ui", "--port", "99999"], "is not a TCP port"),
    (["benchmark", "startup", "--repeats", "0"], "'0' is not a whole number from 1"),
    (["benchmark", "networks", "--samples", "-1"], "'-1' is not a whole number from 1"),
    (["profile", ""], "an empty path"),  # would be the working directory
    (["profile", "/nonexistent/profile.yaml"], "/nonexistent/profile.yaml not found."),
    (["compare", "/nonexistent/audit.json"], "not found: `remi run` writes it"),
    (["compare", "broken.json"], "is not the JSON file `remi run` writes"),
    (["compare", "--seeds", "empty.json"], "not what `remi run` (metrics/audit.json) or `remi seeds`"),
    (["exposure", "--scores", "latin1.csv"], "is not the audit's score table"),
    (["exposure", "--scores", "nan.csv"], "line 2: not the audit's score table (score 'nan' is not a finite number)"),
    (["exposure", "--scores", "empty.json"], "header lacks attack, model, part, sample_id, score"),
    (["request", "cancel", ""], "is not in the ledger: `remi request status` lists every request"),
])
def test_a_bad_argument_is_one_message_and_exit_2(tmp_path, arguments, message):
    project = _project(tmp_path)
    (project / "broken.json").write_text("{")
    (project / "empty.json").write_text("{}")
    (project / "latin1.csv").write_bytes("model,attack,part,sample_id,score\ncafé,loss,forget,1,0\n".encode("latin-1"))
    (project / "nan.csv").write_text("model,attack,part,sample_id,score\ntarget,loss,forget,1,nan\n")
    result = remi(*arguments, cwd=project, timeout=120)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_ui_on_a_port_in_use_says_so_before_printing_a_link(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = remi("ui", "--port", str(taken.getsockname()[1]), cwd=_project(tmp_path), timeout=120)
    assert result.returncode == 2 and "cannot serve the UI on 127.0.0.1:" in result.stderr, result.stderr[-2000:]
    assert "MLflow UI:" not in result.stdout


def test_summary_before_any_run_or_of_a_damaged_audit_says_what_to_do(tmp_path):
    project = _project(tmp_path)
    for form in ([], ["--markdown"]):
        result = remi("summary", *form, cwd=project)
        assert result.returncode == 2 and "run `remi run` first" in result.stderr, result.stderr
    (project / "metrics").mkdir(exist_ok=True)
    (project / "metrics/audit.json").write_text('<<<<<<< HEAD\n{"a": 1}\n=======\n')  # a merge's conflict markers
    result = remi("summary", "--markdown", cwd=project)
    assert result.returncode == 2 and "is not the JSON file `remi run` (its audit stage) writes" in result.stderr


def test_benchmark_networks_times_every_profile(tmp_path):
    out = tmp_path / "networks.json"
    result = remi("benchmark", "networks", "--samples", "32", "--out", str(out))
    assert result.returncode == 0, result.stderr
    timings = json.loads(out.read_text())["profiles"]
    assert set(timings) == {"params.yaml", "profiles/mnist_5k.yaml", "profiles/letter.yaml",
                            "profiles/cifar10_resnet9.yaml", "profiles/cifar10_resnet18.yaml"}
    assert all(t["seconds_per_1000_samples"] > 0 for t in timings.values())
    # The rate is the counted work over the measured time, and the heavier networks count more work.
    for t in timings.values():
        assert math.isclose(t["training_flops_per_second"],
                            t["training_flops_per_sample"] * 1000 / t["seconds_per_1000_samples"], rel_tol=1e-9)
    assert (timings["profiles/cifar10_resnet18.yaml"]["training_flops_per_sample"]
            > 100 * timings["params.yaml"]["training_flops_per_sample"])


def test_training_flops_count_every_layer_forward_and_backward():
    """The small CNN by hand: each layer's multiply-adds (2 FLOPs each) forward, as many again for its
    weight gradient and again for its input gradient, except the first layer's, whose input (the data)
    needs none."""
    from remi.benchmarks.networks import training_flops_per_sample
    from remi.networks.architectures import small_cnn

    model = small_cnn((1, 28, 28), 10, conv1_channels=16, conv2_channels=32, hidden_units=256)
    first = 14 * 14 * 16 * 9  # 3x3 kernels over one input channel at 14x14 outputs
    rest = 7 * 7 * 32 * 9 * 16 + 32 * 7 * 7 * 256 + 256 * 10
    expected = 2 * (2 * first + 3 * rest)
    assert training_flops_per_sample(model, torch.randn(4, 1, 28, 28), torch.arange(4)) == expected
    assert all(parameter.grad is None for parameter in model.parameters())  # no gradient left behind


@pytest.fixture(scope="module")
def finished(tiny_run, tmp_path_factory):
    """A copy of the finished tiny pipeline that these tests may write into."""
    work = tmp_path_factory.mktemp("cli") / "repo"
    clone_run(tiny_run, work)
    return work


@pytest.mark.slow
def test_summary_and_compare_read_the_finished_run(finished):
    audit = json.loads((finished / "metrics/audit.json").read_text())
    summary = remi("summary", cwd=finished)
    assert summary.returncode == 0, summary.stderr
    assert "remi vs retraining on fashion_mnist" in summary.stdout and "Gate: " in summary.stdout
    assert f"{audit['remi/forget_accuracy']:.3f}" in summary.stdout
    assert "workflowType=machine_learning" in summary.stdout
    table = remi("summary", "--markdown", cwd=finished).stdout
    assert table.startswith("| metric (forget vs audit_holdout) | target | retrain | remi |") and "seconds" not in table
    compare = remi("compare", cwd=finished)
    assert compare.returncode == 0 and "remi" in compare.stdout and "retrain" in compare.stdout


@pytest.mark.slow
def test_profile_accounts_for_every_second_of_the_last_run(finished, tmp_path):
    out = tmp_path / "profile.json"
    result = remi("benchmark", "profile", "--out", str(out), cwd=finished)
    assert result.returncode == 0, result.stderr
    profile = json.loads(out.read_text())
    stages = [row["stage"] for row in profile["stages"]]
    assert stages[:3] == ["prepare", "train_target:target", "train_shadows:shadows"] and stages[-1] == "gate"
    assert {"unlearn:retrain", "unlearn:remi", "forgetting_quality", "audit"} <= set(stages)
    columns = [row[key] for row in profile["stages"] for key in ("start_up", "in_run", "gap_after")]
    assert all(value > -0.05 for value in columns)  # clock ticks are 10 ms; MLflow's times are ms
    # Every second of the wall time is in one column.
    assert sum(columns) + profile["before_first_stage"] == pytest.approx(profile["pipeline_seconds"], abs=0.1)
    assert sum(row["start_up"] for row in profile["stages"]) > 1  # imports cost something in every stage


@pytest.mark.slow
def test_benchmark_vectorised_times_each_way_and_they_agree(finished, tmp_path):
    out = tmp_path / "vectorised.json"
    result = remi("benchmark", "vectorised", "--models", "2", "3", "--epochs", "1", "--out", str(out), cwd=finished)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert [row["models"] for row in report["rows"]] == [2, 3] and report["samples_per_model"] == 1000
    for row in report["rows"]:
        assert row["one_by_one_seconds"] > 0 and row["vectorised_seconds"] > 0
        # On the CPU also one by one in the executor's worker processes, each taking its share of the CPUs.
        assert row["processes_seconds"] > 0 and 1 <= row["workers"] <= row["models"] and row["worker_threads"] >= 1
        # One epoch: float rounding only. Adam turns a rounding difference in a near-zero gradient
        # (weights that see Fashion-MNIST's blank border) into a step of up to the learning rate.
        assert row["max_weight_difference"] < 0.05
    assert "speed-up x" in result.stdout


@pytest.mark.slow
def test_benchmark_adam_times_the_unfused_and_the_fused_update(finished, tmp_path):
    out = tmp_path / "adam.json"
    result = remi("benchmark", "adam", "--steps", "5", "--repeats", "1", "--out", str(out), cwd=finished)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    timings = report["milliseconds"]
    assert report["stacked_models"] == 2 and set(timings) == {"one model", "2 stacked"}  # the tiny profile's block
    assert all(timing["unfused_ms"] > 0 and timing["fused_ms"] > 0 for timing in timings.values())
    assert timings["one model"]["forward_backward_ms"] > 0 and "Adam step: unfused" in result.stdout


@pytest.mark.slow
@pytest.mark.skipif(not has_native_bfloat16(torch.device("cpu")), reason="this CPU has no native bfloat16")
def test_benchmark_precision_times_both_precisions_on_both_workloads(finished, tmp_path):
    out = tmp_path / "precision.json"
    result = remi("benchmark", "precision", "--repeats", "2", "--out", str(out), cwd=finished)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    # The tiny profile's block is 2.
    assert set(report["workloads"]) == {"one network", "2 stacked networks", "2 networks one by one"}
    for timing in report["workloads"].values():
        assert all(len(timing["seconds"][p]) == 2 and min(timing["seconds"][p]) > 0 for p in ("float32", "bfloat16"))
        assert timing["speed_up"] == pytest.approx(timing["median_seconds"]["float32"]
                                                   / timing["median_seconds"]["bfloat16"])
    assert "median speed-up x" in result.stdout


@pytest.mark.slow
def test_benchmark_startup_times_every_stage_import_and_keeps_sklearn_out_of_unlearning(tmp_path):
    out = tmp_path / "startup.json"
    result = remi("benchmark", "startup", "--repeats", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    stages = {f"stages.{path.stem}" for path in (REPO / "stages").glob("*.py") if path.stem != "__init__"}
    assert stages | {"torch", "mlflow", "sklearn.metrics"} <= set(report["seconds"])
    assert all(seconds > 0 for seconds in report["seconds"].values())
    loads = report["heavy_frameworks_loaded"]
    assert set(loads) == stages and all("torch" in loads[stage] for stage in stages - {"stages.check_params"})
    # The unlearn stages and forgetting quality only rank (rank_auc): scikit-learn's 1-2 s import stays out
    # of their start-up; the audit draws ROC curves with it, which the probe must see.
    assert "sklearn" not in loads["stages.unlearn"] + loads["stages.forgetting_quality"]
    assert "sklearn" in loads["stages.audit"]
    elsewhere = remi("benchmark", "startup", cwd=tmp_path)
    assert elsewhere.returncode == 2 and "from the project root" in elsewhere.stderr


@pytest.mark.slow
def test_benchmark_unlearning_times_each_method_against_retraining(finished):
    result = remi("benchmark", "unlearning", "--repeats", "1", cwd=finished)
    assert result.returncode == 0, result.stderr
    assert "retrain    seconds" in result.stdout and "ratio to retrain: median 1.000" in result.stdout
    assert "remi       seconds" in result.stdout


@pytest.mark.slow
@pytest.mark.alone
def test_benchmark_threads_times_every_setting_idle_and_beside_a_competitor(finished, tmp_path):
    out = tmp_path / "threads.json"
    # ReMI alone: every setting in a few minutes (retraining is the same code path, ten times longer).
    result = remi("benchmark", "threads", "--limit-seconds", "60", "--workloads", "remi", "--out", str(out),
                  cwd=finished, timeout=1200)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    settings = {(r["load"], r["threads"], r["wait_policy"]) for r in report["rows"]}
    assert settings == {(load, threads, wait) for load in ("idle", "one competing process")
                        for threads, wait in [(str(n), w) for n in {1, report["cores"]} for w in ("default", "PASSIVE")]
                        + [("auto", "default")]}
    assert report["workloads"] == ["remi"] and all(set(r["seconds"]) == {"remi"} for r in report["rows"])
    auto = {r["load"]: r["threads_used"]["remi"] for r in report["rows"] if r["threads"] == "auto"}
    assert auto["one competing process"] <= max(1, report["cores"] - 1)  # it left the competitor its core
    assert all(r["seconds"]["remi"] > 0 for r in report["rows"] if r["load"] == "idle")
    assert "slow-down under one competing process" in result.stdout
    assert _running_busy_loops() == [], "a competitor outlived the benchmark"


def _running_busy_loops() -> list[str]:
    """PIDs whose last argument is exactly the benchmark's competitor (`pgrep -f "while True"` also
    matched an unrelated process on the CI runner)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:  # the process ended while we looked
            continue
        if len(argv) >= 2 and argv[-2] == BUSY_LOOP.encode():
            found.append(cmdline.parent.name)
    return found


@pytest.mark.slow
def test_benchmark_sequential_tables_the_drift_cycle_by_cycle(finished):
    from mlflow import MlflowClient

    result = remi("benchmark", "sequential", "--cycles", "2", "--requests", "1", "--request-samples", "20",
                  "--one-shot", cwd=finished, timeout=1800)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    drift = json.loads((finished / "reports/sequential_drift/drift.json").read_text())
    rows, one_shot = drift["rows"], drift["one_shot_rows"]
    assert [(r["cycle"], r["forget_samples_total"]) for r in rows] == [(1, 20), (2, 40)]
    # Cycle 1 starts from the target; cycle 2 from cycle 1's release, forgetting only its own request.
    assert [(r["start_release_version"], r["forgotten_this_cycle"]) for r in rows] == [(0, 20), (1, 20)]
    # One-shot: every cycle from the target, forgetting the cumulative set; cycle 1 is the sequential
    # chain's (the same run: not repeated), cycle 2 forgets both cycles' requests from the target.
    assert [(r["start_release_version"], r["forgotten_this_cycle"]) for r in one_shot] == [(0, 20), (0, 40)]
    assert "\n| 2 | 40 | 20 | 1 | " in (finished / "reports/sequential_drift/drift.md").read_text()
    assert (finished / "reports/sequential_drift/drift.png").read_bytes()[:4] == b"\x89PNG"
    client = MlflowClient(f"sqlite:///{finished / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    [run] = client.search_runs(experiments, "tags.mlflow.runName = 'sequential-drift'")
    for metric in ("gap_shadow_attack_auc", "one_shot/gap_shadow_attack_auc"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, metric)] == [1, 2]


@pytest.mark.slow
def test_ablation_audits_every_variant(finished):
    from remi.audit.ablation import VARIANTS

    result = remi("ablation", "--seeds", "0", cwd=finished, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    numbers = json.loads((finished / "metrics/remi_ablation.json").read_text())
    assert numbers["seeds"] == [0] and set(numbers["variants"]) == set(VARIANTS)
    budget = yaml.safe_load((finished / "params.yaml").read_text())["remi"]["max_steps"]
    # Where each run stopped: a check's step, within the variant's own step budget.
    assert all(0 < values["steps"]["mean"] <= values["switches"].get("max_steps", budget)
               for values in numbers["variants"].values())
    report = (finished / "reports/remi_ablation.md").read_text()
    assert all(f"| {name} |" in report for name in VARIANTS)


@pytest.mark.slow
def test_ablation_audits_retraining_with_other_seeds_as_the_floor_of_every_gap(finished):
    from mlflow import MlflowClient

    from remi.audit.ablation import FLOOR

    result = remi("ablation", "--seeds", "0", "1", "--ulira", "--variants", "default", "--retrain-floor",
                  cwd=finished, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    numbers = json.loads((finished / "metrics/remi_ablation.json").read_text())
    assert list(numbers["variants"]) == ["default", FLOOR]
    floor, retrain = numbers["variants"][FLOOR], numbers["retrain"]
    # Other seeds than the pipeline's retraining: the same recipe, but not the model every gap is measured to.
    assert floor["average_gap"]["mean"] > 0 and floor["largest_auc_gap"]["n"] == 2
    assert floor["forget_accuracy"]["mean"] == pytest.approx(retrain["forget_accuracy"], abs=0.1)
    assert floor["steps"]["mean"] == yaml.safe_load((finished / "params.yaml").read_text())["train"]["epochs"] - 1
    # U-LiRA with retrained references (the online shadows retrain without the forget samples).
    assert 0 < floor["ulira_auc"]["mean"] < 1

    # MLflow: one ablation run with the files as artifacts, a child per row with the JSON's means and every
    # seed's curves (retraining's end at its last epoch).
    client = MlflowClient(f"sqlite:///{finished / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    [parent] = client.search_runs(experiments, "tags.mlflow.runName = 'ablation'", order_by=["start_time DESC"],
                                  max_results=1)
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "ablation")} == {
        "ablation/remi_ablation.json", "ablation/remi_ablation.md"}
    assert parent.data.metrics["retrain/forget_accuracy"] == pytest.approx(retrain["forget_accuracy"])
    assert parent.data.params["command"] == 'remi ablation --seeds 0 1 --ulira --retrain-floor --variants "default"'
    children = {run.data.params["variant"]: run for run in
                client.search_runs(experiments, f"tags.mlflow.parentRunId = '{parent.info.run_id}'")}
    assert set(children) == {"default", FLOOR}
    for name, child in children.items():
        row = numbers["variants"][name]
        assert child.data.metrics["largest_auc_gap"] == pytest.approx(row["largest_auc_gap"]["mean"])
        assert child.data.metrics["ulira_auc_std"] == pytest.approx(row["ulira_auc"]["std"])
        assert {key.split("/")[0] for key in child.data.metrics if "/" in key} == {"seed0", "seed1"}
    floor_curve = next(key for key in children[FLOOR].data.metrics if key.startswith("seed1/"))
    history = client.get_metric_history(children[FLOOR].info.run_id, floor_curve)
    assert max(point.step for point in history) == floor["steps"]["mean"]
    report = (finished / "reports/remi_ablation.md").read_text()
    assert '--ulira --retrain-floor --variants "default"' in report and f"| {FLOOR} |" in report


@pytest.mark.slow
def test_fq_anatomy_takes_forgetting_quality_apart_into_location_and_spread(finished):
    result = remi("fq-anatomy", "--variants", "default", "no anchor", cwd=finished, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    numbers = json.loads((finished / "metrics/forgetting_quality_anatomy.json").read_text())
    assert numbers["models_per_population"] == 2  # the tiny profile's forgetting_quality.models
    assert numbers["largest_certifiable_epsilon"] == pytest.approx(math.log(2 * 2 * (1 - 0.01) - 1))
    rows = numbers["rows"]
    # The online shadows' row keeps the forget samples that 2 of the 4 tiny online shadows never trained on,
    # and retrain-vs-retrain is shown again on the same samples.
    samples = next(int(name.rsplit("; ", 1)[1].split()[0]) for name in rows if name.startswith("online shadows"))
    assert 0 < samples <= 100
    assert set(rows) == {"retrain vs retrain", "default", "no anchor", SHADOWS_ROW.format(count=2),
                         ONLINE_ROW.format(count=2, samples=samples), SAME_SAMPLES_ROW.format(samples=samples)}
    for baseline in (rows["retrain vs retrain"], rows[SAME_SAMPLES_ROW.format(samples=samples)]):
        # Moving a retrained population onto retraining's own location or spread changes nothing.
        assert baseline["quality_with_retrainings_location"] == baseline["quality_with_retrainings_spread"] == (
            baseline["forgetting_quality"])
    for row in rows.values():
        assert 0 < row["forgetting_quality"] <= 1 and row["distance_to_retraining"] > 0 and row["spread"] > 0
        assert -1 <= row["correlation_with_retraining"] <= 1  # a number, on every row (not NaN)
        assert 0 < row["quality_at_predicted_location"] <= 1
        assert 0 < row["quality_at_location_predicted_with_neighbours"] <= 1
    # Fitted to a retrained population, the prediction follows retraining's per-sample means (easy samples are
    # confident under every model); a prediction from unrelated inputs would not. The retain set's neighbours are
    # four inputs more to the same least-squares fit: never a worse fit to the population it was fitted to.
    assert 0.5 < numbers["predicted_location_correlation"] <= 1
    assert 0.5 < numbers["location_predicted_with_neighbours_correlation"] <= 1
    # The stage's own estimate for ReMI, from the same seeds and recipe (a thread count chosen by the load
    # may round differently and move a few of the 100 samples' bins: 0.01 each at most).
    stage = json.loads((finished / "metrics/forgetting_quality.json").read_text())
    assert rows["default"]["forgetting_quality"] == pytest.approx(stage["remi/forgetting_quality"], abs=0.03)
    report = (finished / "reports/forgetting_quality_anatomy.md").read_text()
    assert "| default |" in report and "quality at the predicted location |" in report

    # MLflow: one run with the resolution and the files, a child per population with its row's figures.
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{finished / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    [parent] = client.search_runs(experiments, "tags.mlflow.runName = 'fq_anatomy'")
    assert parent.data.metrics["largest_certifiable_epsilon"] == numbers["largest_certifiable_epsilon"]
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "fq_anatomy")} == {
        "fq_anatomy/forgetting_quality_anatomy.json", "fq_anatomy/forgetting_quality_anatomy.md"}
    children = client.search_runs(experiments, f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {child.data.params["population"]: child.data.metrics for child in children} == rows


def test_fq_anatomy_refuses_a_population_too_small_to_estimate_before_training():
    # Refused right after params.yaml is read, so the repository's own checkout is safe to run it in.
    result = remi("fq-anatomy", "--models", "1", cwd=REPO, timeout=120)
    assert result.returncode == 2 and "forgetting_quality.models" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_ablation_can_keep_remis_reference_shadows_apart_and_attack_each_variant_with_ulira(finished):
    result = remi("ablation", "--seeds", "0", "--independent-references", "--ulira", "--variants", "default",
                  "no anchor", cwd=finished, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    numbers = json.loads((finished / "metrics/remi_ablation_independent_references.json").read_text())
    assert list(numbers["variants"]) == ["default", "no anchor"]
    remi_shadows, audit_shadows = numbers["remi_reference_shadows"], numbers["audit_reference_shadows"]
    assert remi_shadows and audit_shadows and not set(remi_shadows) & set(audit_shadows)
    for variant in numbers["variants"].values():
        assert 0 < variant["ulira_auc"]["mean"] < 1 and math.isfinite(variant["test_confidence_shift"]["mean"])
    report = (finished / "reports/remi_ablation_independent_references.md").read_text()
    assert "--independent-references --ulira" in report and "| default |" in report and "ulira_auc" in report


@pytest.mark.slow
def test_ablation_can_take_remis_references_from_the_online_shadows_each_where_it_never_trained(finished, monkeypatch):
    refused = remi("ablation", "--seeds", "0", "--online-references", "--ulira", cwd=finished, timeout=120)
    assert refused.returncode == 2 and "--online-references" in refused.stderr and "Traceback" not in refused.stderr
    result = remi("ablation", "--seeds", "0", "--online-references", "--variants", "default", cwd=finished, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    numbers = json.loads((finished / "metrics/remi_ablation_online_references.json").read_text())
    assert numbers["remi_references"].startswith("online shadows") and list(numbers["variants"]) == ["default"]
    assert "flatters ReMI" in (finished / "reports/remi_ablation_online_references.md").read_text()

    # The task behind it: a reference model stands in for a sample exactly where it never trained on it, and the
    # shadows only where every online shadow did.
    from remi.data.datasets import load_dataset
    from remi.data.splits import load_split
    from remi.networks.checkpoints import load_shadow_outputs
    from remi.pipeline.layout import ONLINE_SHADOWS_DIR, shadow_dir, split_path
    from remi.pipeline.params import load_params
    from remi.pipeline.tasks import load_task

    monkeypatch.chdir(finished)
    params = load_params()
    task = load_task(params, load_dataset(params.data.dataset, params.data.raw_dir), "remi", torch.device("cpu"),
                     online_references=True)
    assert task.references_unseen is not None
    online = params.online_shadows.count
    assert len(task.references) == online + params.shadows.count
    for split, mask in (("forget", task.references_unseen.forget), ("out", task.references_unseen.out)):
        ids = load_split(split_path(split))
        assert mask.shape == (len(task.references), len(ids)) and mask.any(0).all()
        for index in range(online):
            outputs = load_shadow_outputs(shadow_dir(index, ONLINE_SHADOWS_DIR))
            trained_on = torch.isin(ids, outputs["sample_ids"][outputs["is_member"]])
            assert torch.equal(mask[index], ~trained_on)
        assert torch.equal(mask[online:], (~mask[:online].any(0)).expand(params.shadows.count, -1))
