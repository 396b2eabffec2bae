"""Every registered network builds from params.yaml, trains, and splits into frozen prefix + head."""

import pytest
import torch

from remi.networks.architectures import NETWORKS, build_network
from remi.networks.training import adam, train_classifier
from remi.params_schema import Train
from remi.pipeline.params import load_params
from remi.unlearning.remi import split_head
from tests.conftest import REPO

SHAPES = {"small_cnn": (1, 28, 28), "mlp": (16,), "resnet18": (3, 16, 16), "resnet9": (3, 16, 16)}
SMALL = {"small_cnn": {"conv1_channels": 4, "conv2_channels": 8, "hidden_units": 16},
         "mlp": {"hidden_units": [32, 16]}, "resnet18": {"width": 4}, "resnet9": {"width": 4}}


def test_every_network_has_options_in_params_yaml():
    model = load_params(REPO / "params.yaml").model
    assert set(NETWORKS) <= set(type(model).model_fields)
    for arch in NETWORKS:
        net = build_network(model.model_copy(update={"arch": arch}), SHAPES[arch], 7)
        assert net(torch.zeros(2, *SHAPES[arch])).shape == (2, 7)


@pytest.mark.parametrize("arch", sorted(NETWORKS))
def test_network_learns_a_small_task_and_splits_for_remi(arch):
    torch.manual_seed(0)
    defaults = load_params(REPO / "params.yaml").model
    options = getattr(defaults, arch).model_copy(update=SMALL[arch])
    net = build_network(defaults.model_copy(update={"arch": arch, arch: options}), SHAPES[arch], 2)
    inputs = torch.randn(64, *SHAPES[arch])
    labels = (inputs.flatten(1)[:, 0] > 0).long()  # learnable from the inputs
    train_classifier(net, inputs, labels, Train(epochs=15, batch_size=16, max_lr=0.01, seed=0), seed=0)
    assert (net(inputs).argmax(1) == labels).float().mean() > 0.9
    frozen, head = split_head(net, 2)
    assert torch.allclose(head(frozen(inputs)), net(inputs), atol=1e-5)
    assert all(not p.requires_grad for p in frozen.parameters()) and any(p.requires_grad for p in head.parameters())


def test_adam_is_fused_on_the_cpu_and_steps_as_torchs_unfused_update():
    torch.manual_seed(0)
    weights = [torch.randn(50, 30, requires_grad=True), torch.randn(30, requires_grad=True)]
    copies = [weight.detach().clone().requires_grad_(True) for weight in weights]
    start = [weight.detach().clone() for weight in weights]
    fused, unfused = adam(weights, lr=0.01), torch.optim.Adam(copies, lr=0.01)
    assert fused.defaults["fused"] is True
    for _ in range(5):
        gradients = [torch.randn_like(weight) for weight in weights]
        for optimizer, tensors in ((fused, weights), (unfused, copies)):
            for tensor, gradient in zip(tensors, gradients, strict=True):
                tensor.grad = gradient.clone()
            optimizer.step()
    for weight, copy, before in zip(weights, copies, start, strict=True):
        assert (weight - before).abs().max() > 0.01  # it stepped
        torch.testing.assert_close(weight, copy, rtol=1e-5, atol=1e-6)
