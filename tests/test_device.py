"""Where the networks compute: REMI_DEVICE, and every method run with its task on that device.

Here (no GPU) the device is the CPU. On a GPU machine, `REMI_DEVICE=cuda python -m pytest
tests/test_device.py` runs the same checks with the task on the GPU, where a tensor left on the
CPU fails loudly.
"""

import copy
import warnings
from dataclasses import replace

import pytest
import torch

from remi.attacks.shadow_attack_model import AttackModel, fit_class_gaussians
from remi.attacks.signals import attack_features
from remi.catalog import LEAKAGE_ESTIMATORS, SIGNAL_MATCHES, SIGNAL_REFERENCES, STOP_TARGETS
from remi.networks.architectures import resnet9
from remi.networks.training import predict_logits, seeded_network, train_classifier
from remi.params_schema import Train
from remi.pipeline.entry_point import stage_main
from remi.pipeline.params import load_params
from remi.runtime.device import DEVICE_ENV, DeviceError, compute_device, describe, model_device
from remi.unlearning import METHODS, UnlearningTask, run_method
from remi.unlearning.remi import split_head
from tests.conftest import REPO

DEFAULTS = load_params(REPO / "params.yaml")


def test_unset_or_cpu_means_the_cpu(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    assert compute_device() == torch.device("cpu")
    monkeypatch.setenv(DEVICE_ENV, " cpu ")
    assert compute_device() == torch.device("cpu")
    assert describe(torch.device("cpu")).startswith("cpu:")


@pytest.mark.parametrize(("name", "message"), [("banana", "is not a device name"),
                                               ("mps", "only cpu and cuda devices are supported")])
def test_a_device_name_we_cannot_use_is_refused(monkeypatch, name, message):
    monkeypatch.setenv(DEVICE_ENV, name)
    with pytest.raises(DeviceError, match=message):
        compute_device()


def test_a_gpu_that_is_not_there_is_refused_with_the_way_out(monkeypatch):
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    monkeypatch.setenv(DEVICE_ENV, f"cuda:{visible}")  # one past the last GPU (the first when none)
    expected = "no usable CUDA GPU. Unset REMI_DEVICE" if visible == 0 else f"only {visible} CUDA GPU"
    with pytest.raises(DeviceError, match=expected):
        compute_device()


def test_cuda_without_an_index_names_the_current_gpu(monkeypatch):
    # Pretend two GPUs, the second current: a tensor on "cuda" would report cuda:1, and torch says
    # torch.device("cuda") != torch.device("cuda:1"), so the bare name must not come back.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setenv(DEVICE_ENV, "cuda")
    assert compute_device() == torch.device("cuda:1")
    monkeypatch.setenv(DEVICE_ENV, "cuda:0")
    assert compute_device() == torch.device("cuda:0")


def test_a_stage_with_a_bad_device_stops_with_a_readable_error(monkeypatch, capsys):
    monkeypatch.setenv(DEVICE_ENV, "banana")
    with pytest.raises(SystemExit) as stopped:
        stage_main(compute_device)
    assert stopped.value.code == 2
    assert "ERROR (DeviceError): REMI_DEVICE='banana' is not a device name" in capsys.readouterr().err


@pytest.fixture(scope="module")
def colour_task() -> UnlearningTask:
    """A CIFAR-shaped task (ResNet-9 with batch norm on 3x32x32 inputs), all on REMI_DEVICE."""
    device = compute_device()
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(500, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (500,), generator=generator)

    def build():
        return resnet9((3, 32, 32), 10, width=4)

    original = seeded_network(build, 0).to(device)
    train_classifier(original, inputs[:300], labels[:300], Train(epochs=2, batch_size=50, max_lr=0.01, seed=0), 0)
    out_logits = predict_logits(original, inputs[300:])
    attack = AttackModel(attack_features(out_logits, labels[300:]).shape[1], 8).requires_grad_(False).eval()
    return UnlearningTask(
        original=original,
        retain=(inputs[:250].to(device), labels[:250].to(device)),
        forget=(inputs[250:300].to(device), labels[250:300].to(device)),
        out=(inputs[300:].to(device), labels[300:].to(device)),
        attack=attack.to(device), class_gaussians=fit_class_gaussians(out_logits, labels[300:]).to(device),
        new_network=lambda: build().to(device), train_params=Train(epochs=1, batch_size=50, max_lr=0.01, seed=0),
        references=[seeded_network(build, seed).to(device).eval() for seed in (1, 2)])


SHORT = {"finetune": {"epochs": 1}, "neggrad_plus": {"steps": 3}, "random_label": {"steps": 3},
         "salun": {"steps": 3}, "scrub": {"steps": 3, "forget_steps": 1}, "fisher": {"samples": 100},
         "ssd": {"samples": 100}, "retrain": {}}


def test_every_registered_method_is_checked_on_the_device():
    assert set(SHORT) | {"remi"} == set(METHODS)


@pytest.mark.parametrize("method", sorted(SHORT))
def test_every_baseline_runs_with_its_task_on_the_device(colour_task, method):
    logged: list[int] = []
    task = replace(_for(colour_task, method, SHORT[method]), on_step=lambda step, values: logged.append(step))
    model, seconds = run_method(method, task)
    assert model_device(model) == compute_device() and seconds > 0
    logits = predict_logits(model, task.forget[0])
    assert logits.device.type == "cpu" and torch.isfinite(logits).all()
    if "steps" in SHORT[method]:  # the gradient baselines hand over every step's losses once, in order, at the end
        assert logged == list(range(SHORT[method]["steps"]))


@pytest.mark.parametrize("reference", SIGNAL_REFERENCES)
@pytest.mark.parametrize("estimator", LEAKAGE_ESTIMATORS)
def test_remi_runs_with_each_estimator_on_the_device(colour_task, estimator, reference):
    task = _never_stopping(colour_task, estimator=estimator, signal_reference=reference)
    model, _ = run_method("remi", task)
    assert model_device(model) == compute_device()
    frozen, _ = split_head(copy.deepcopy(task.original), 3)
    frozen_names = {name for name, _ in frozen.named_parameters()}  # a prefix slice keeps the names
    before = dict(task.original.named_parameters())
    moved = {name for name, weight in model.named_parameters() if not torch.equal(weight, before[name])}
    assert moved and not moved & frozen_names  # the head trained, the prefix did not


@pytest.mark.parametrize("stop_target", STOP_TARGETS)
def test_remi_aims_its_stop_rule_at_each_stop_target_on_the_device(colour_task, stop_target):
    logged: dict[str, float] = {}
    task = replace(_for(colour_task, "remi", {"stop_target": stop_target, "max_steps": 4, "check_every": 2,
                                              "batch_size": 25, "trainable_layers": 3}),
                   on_step=lambda step, values: logged.update(values))
    model, _ = run_method("remi", task)
    assert model_device(model) == compute_device()
    targets = {key: value for key, value in logged.items() if key.startswith("target_")}
    if stop_target == "fixed":
        assert not targets  # the params' own target_auc: nothing measured to log
    else:
        assert set(targets) == {"target_signal_auc", "target_leakage_auc", "target_accuracy_gap"}
        assert all(0 <= targets[f"target_{key}_auc"] <= 1 for key in ("signal", "leakage"))
        assert -1 <= targets["target_accuracy_gap"] <= 1


def test_remi_raises_its_unseen_teacher_by_the_fraction_of_the_targets_lead_on_the_device(colour_task):
    def run(overrides: dict) -> tuple[torch.nn.Module, dict[str, float]]:
        logged: dict[str, float] = {}
        task = replace(_never_stopping(colour_task, **overrides), on_step=lambda step, values: logged.update(values))
        return run_method("remi", task)[0], logged

    plain, plain_log = run({"unseen_raise": 0.0})
    _, half_log = run({"unseen_raise": 0.5})
    full, full_log = run({"unseen_raise": 1.0})
    assert "unseen_teacher_raise" not in plain_log
    assert full_log["unseen_teacher_raise"] == pytest.approx(2 * half_log["unseen_teacher_raise"])
    assert not all(torch.equal(a, b) for a, b in zip(plain.parameters(), full.parameters(), strict=True))
    # Without the unseen-model term there is no teacher to raise: the same model as without the raise.
    silent, silent_log = run({"unseen_raise": 1.0, "lambda_unseen": 0.0})
    unraised, _ = run({"unseen_raise": 0.0, "lambda_unseen": 0.0})
    assert "unseen_teacher_raise" not in silent_log
    assert all(torch.equal(a, b) for a, b in zip(silent.parameters(), unraised.parameters(), strict=True))


@pytest.mark.parametrize("signal_match", SIGNAL_MATCHES)
def test_remi_forgets_a_single_sample_request_with_finite_weights(colour_task, signal_match):
    """A sequential cycle with one new request of one sample: every forget batch is that one value, whose
    variance is 0 (a Gaussian KL without a floor: infinite, its gradient huge)."""
    one = replace(colour_task, forget=(colour_task.forget[0][:1], colour_task.forget[1][:1]))
    model, _ = run_method("remi", _never_stopping(one, signal_match=signal_match))
    assert all(torch.isfinite(weight).all() for weight in model.parameters())


def _never_stopping(task: UnlearningTask, **overrides: object) -> UnlearningTask:
    """A short ReMI task whose stop rule never fires (target_auc 0), so every step runs."""
    return _for(task, "remi", {"max_steps": 4, "check_every": 2, "batch_size": 25, "trainable_layers": 3,
                               "target_auc": 0.0, "auc_tolerance": 0.0} | overrides)


def test_remi_hands_over_every_steps_losses_once_and_in_order_on_the_device(colour_task):
    # The losses stay on the device until a stopping check (DeferredLog): none may be lost at the last check,
    # none logged twice, and the curves must still come in step order.
    logged: list[tuple[int, str]] = []
    task = replace(_never_stopping(colour_task, max_steps=5),
                   on_step=lambda step, values: logged.extend((step, name) for name in values))
    run_method("remi", task)
    losses = [(step, name) for step, name in logged if name.startswith("loss_")]
    checks = [step for step, name in logged if name == "signal_auc"]
    assert checks == [0, 2, 4, 5]
    assert {step for step, _ in losses} == set(range(5)) and len(losses) == len(set(losses))
    assert [step for step, _ in logged] == sorted(step for step, _ in logged)  # checks and losses, in step order


@pytest.mark.skipif(compute_device().type != "cuda", reason="the host waits for a GPU only")
@pytest.mark.parametrize("method", ["remi", "neggrad_plus", "random_label", "salun", "scrub"])
def test_unlearning_steps_never_make_the_host_wait_on_the_gpu(colour_task, method):
    def waits(steps: int) -> int:
        # ReMI: two checks whatever the steps, the first and the last
        task = (_never_stopping(colour_task, max_steps=steps, check_every=1000) if method == "remi"
                else _for(colour_task, method, SHORT[method] | {"steps": steps}))
        task = replace(task, on_step=lambda *_: None)
        torch.cuda.set_sync_debug_mode("warn")  # a UserWarning each time the host waits for the GPU
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                run_method(method, task)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return len(caught)

    assert waits(12) == waits(4)


def _for(task: UnlearningTask, method: str, overrides: dict) -> UnlearningTask:
    """The task with `method`'s params.yaml settings, shortened by `overrides`."""
    return replace(task, method_params=DEFAULTS.method(method).model_copy(update={"seed": 0} | overrides))
