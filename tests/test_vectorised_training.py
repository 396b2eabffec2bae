"""Vectorised training (remi/networks/vectorised.py) gives the models one-by-one training gives."""

import pytest
import torch

from remi.attacks.shadow_models import shadow_blocks
from remi.networks.architectures import build_network
from remi.networks.training import predict_logits, train_classifier
from remi.networks.vectorised import can_vectorise, train_classifiers
from remi.params_schema import Model, Train
from tests.conftest import small_cnns

RECIPE = Train(epochs=3, batch_size=64, max_lr=0.002, seed=0)


def _network(params, arch):
    return Model.model_validate(params["model"] | {"arch": arch})


def _weight_gap(first, second):
    return max((a - b).abs().max().item() for a, b in zip(first.parameters(), second.parameters(), strict=True))


def test_vectorised_and_one_by_one_training_give_the_same_models(fashion_mnist, params):
    seeds = [11, 12, 13]
    generator = torch.Generator().manual_seed(0)
    # Each model its own samples (as shadows have); 600 = 9 batches of 64 and a smaller last one.
    data = [fashion_mnist.subset(torch.randperm(len(fashion_mnist.labels), generator=generator)[:600])
            for _ in seeds]
    models = small_cnns(fashion_mnist, params, seeds)
    one_by_one = [train_classifier(m, *d, RECIPE, s) for m, d, s in zip(models, data, seeds, strict=True)]
    epochs_seen = []
    together = train_classifiers(small_cnns(fashion_mnist, params, seeds), data, RECIPE, seeds,
                                 on_epoch=lambda epoch, values: epochs_seen.append((epoch, values["train_loss"])))
    probe = fashion_mnist.inputs[-1000:]
    for alone, batched in zip(one_by_one, together, strict=True):
        assert _weight_gap(alone, batched) < 1e-4
        assert torch.allclose(predict_logits(alone, probe), predict_logits(batched, probe), atol=1e-4)
        assert not batched.training
    # The models really are different models (each its seed and data), not one model three times.
    assert _weight_gap(together[0], together[1]) > 0.01
    assert [epoch for epoch, _ in epochs_seen] == [0, 1, 2] and epochs_seen[-1][1] < epochs_seen[0][1]


def test_networks_with_buffers_or_unequal_data_are_refused(fashion_mnist, params):
    resnet = build_network(_network(params, "resnet9"), (3, 32, 32), 10)
    assert not can_vectorise(resnet)  # batch norm's running statistics
    assert can_vectorise(small_cnns(fashion_mnist, params, [0])[0])
    data = [fashion_mnist.subset(torch.arange(100)), fashion_mnist.subset(torch.arange(90))]
    with pytest.raises(ValueError, match="equally many samples"):
        train_classifiers(small_cnns(fashion_mnist, params, [0, 1]), data, RECIPE, [0, 1])


def test_shadows_train_in_fixed_blocks():
    assert shadow_blocks(10, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert shadow_blocks(3, 1) == [[0], [1], [2]]
    assert shadow_blocks(8, 8) == [list(range(8))]
