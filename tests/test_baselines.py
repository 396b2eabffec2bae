"""Each baseline does what it should on a small, real case (a CNN that memorised 600 samples)."""

import copy

import pytest
import torch

from remi.attacks.shadow_attack_model import AttackModel
from remi.networks.architectures import small_cnn
from remi.networks.training import accuracy, predict_logits, seeded_network, train_classifier
from remi.params_schema import Finetune, Fisher, Salun, Scrub, Ssd, Train, TwoSetFineTune
from remi.unlearning import METHODS, UnlearningTask

PARAMS = {
    "finetune": Finetune(epochs=3, batch_size=64, lr=0.001, seed=0),
    "neggrad_plus": TwoSetFineTune(steps=40, batch_size=64, lr=0.001, retain_weight=0.9, seed=0),
    "random_label": TwoSetFineTune(steps=40, batch_size=64, lr=0.001, retain_weight=0.5, seed=0),
    "salun": Salun(steps=40, batch_size=64, lr=0.001, retain_weight=0.5, saliency_fraction=0.3, seed=0),
    "scrub": Scrub(steps=60, forget_steps=20, batch_size=64, lr=0.001, seed=0),
    "fisher": Fisher(alpha=1e-6, max_variance=1e-3, samples=300, batch_size=32, seed=0),
    "ssd": Ssd(alpha=10.0, dampening=1.0, samples=300, batch_size=32, seed=0),
}
NOT_USED = Train(epochs=1, batch_size=1, max_lr=0.1, seed=0)  # the baselines here do not retrain


@pytest.fixture(scope="module")
def memorised(fashion_mnist):
    order = torch.randperm(len(fashion_mnist), generator=torch.Generator().manual_seed(3))
    train, out = order[:600], order[600:900]
    model = seeded_network(lambda: small_cnn((1, 28, 28), 10, 8, 16, 64), 0)
    train_classifier(model, *fashion_mnist.subset(train), Train(epochs=25, batch_size=32, max_lr=0.003, seed=0), 0)
    # forget: the 100 samples of one class are a set the rest of the data does not explain away
    labels = fashion_mnist.labels[train]
    forget, retain = train[labels == 6][:100], train[labels != 6]
    return fashion_mnist, model, retain, forget, out


def _task(memorised, method, **overrides):
    dataset, model, retain, forget, out = memorised
    return UnlearningTask(original=model, retain=dataset.subset(retain), forget=dataset.subset(forget),
                          out=dataset.subset(out), attack=AttackModel(16, 8), class_gaussians=None,
                          new_network=lambda: small_cnn((1, 28, 28), 10, 8, 16, 64), train_params=NOT_USED,
                          method_params=PARAMS[method].model_copy(update=overrides))


def _accuracy(model, samples):
    return accuracy(predict_logits(model, samples[0]), samples[1])


@pytest.mark.parametrize("method", ["neggrad_plus", "random_label", "salun", "scrub"])
def test_forgetting_methods_lower_forget_accuracy_and_keep_retain(memorised, method):
    task = _task(memorised, method)
    before = _accuracy(task.original, task.forget)
    model = METHODS[method](task)
    assert _accuracy(model, task.forget) < before - 0.3
    assert _accuracy(model, task.retain) > 0.8


def test_finetune_trains_on_retain_only_and_leaves_the_original_untouched(memorised):
    task = _task(memorised, "finetune")
    original = copy.deepcopy(task.original.state_dict())
    model = METHODS["finetune"](task)
    assert _accuracy(model, task.retain) > 0.9
    assert all(torch.equal(original[k], v) for k, v in task.original.state_dict().items())
    assert any(not torch.equal(original[k], v) for k, v in model.state_dict().items())


def test_fisher_noise_grows_with_alpha(memorised):
    def moved(alpha):
        model = METHODS["fisher"](_task(memorised, "fisher", alpha=alpha))
        return sum((a - b).norm() ** 2 for a, b in zip(model.parameters(), memorised[1].parameters(), strict=True))

    small, large = moved(1e-9), moved(1e-6)
    assert 0 < small < large


def test_ssd_changes_nothing_when_forget_importance_matches_the_training_set(memorised):
    dataset, model, retain, forget, _ = memorised
    # forget = retain = the same samples, per-sample gradients (batch 1), all samples used: F_forget
    # equals F_train up to float rounding, never alpha (10) times larger.
    same = _task(memorised, "ssd", batch_size=1, samples=10_000)
    same.forget = same.retain = dataset.subset(retain[:300])
    untouched = METHODS["ssd"](same)
    assert all(torch.equal(a, b) for a, b in zip(untouched.parameters(), model.parameters(), strict=True))
    dampened = METHODS["ssd"](_task(memorised, "ssd"))
    changed = [not torch.equal(a, b) for a, b in zip(dampened.parameters(), model.parameters(), strict=True)]
    assert any(changed)
    assert _accuracy(dampened, dataset.subset(forget)) < _accuracy(model, dataset.subset(forget))


def test_salun_moves_only_the_salient_weights(memorised):
    from remi.unlearning.gradient_methods import saliency_masks

    task = _task(memorised, "salun")
    masks = saliency_masks(copy.deepcopy(task.original), task.forget, 0.3)
    share = sum(m.sum() for m in masks) / sum(m.numel() for m in masks)
    assert abs(share - 0.3) < 0.01
    model = METHODS["salun"](task)
    for mask, before, after in zip(masks, task.original.parameters(), model.parameters(), strict=True):
        assert torch.equal(before[mask == 0], after[mask == 0])
        assert not torch.equal(before[mask == 1], after[mask == 1]) or mask.sum() == 0
