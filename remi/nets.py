"""Networks, by name. Every network maps a batch of inputs to class logits."""

from collections.abc import Callable
from typing import Any

from torch import nn

from remi import catalog
from remi.catalog import check_registry


def small_cnn(num_classes: int, conv1_channels: int, conv2_channels: int, hidden_units: int) -> nn.Module:
    """Two stride-2 3x3 convs (28 -> 14 -> 7) and one hidden layer: fast on a 2-core CPU.

    Stride-2 convs replace conv + max-pool: the same downsampling for a quarter of the conv FLOPs.
    """
    return nn.Sequential(
        nn.Conv2d(1, conv1_channels, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(conv1_channels, conv2_channels, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(conv2_channels * 7 * 7, hidden_units), nn.ReLU(),
        nn.Linear(hidden_units, num_classes),
    )


NETWORKS: dict[str, Callable[..., nn.Module]] = {"small_cnn": small_cnn}
check_registry("network", NETWORKS, catalog.NETWORKS)


def build_network(model_params: dict[str, Any], num_classes: int) -> nn.Module:
    """The network named by params.yaml's `model` section."""
    options = {k: v for k, v in model_params.items() if k != "arch"}
    return NETWORKS[model_params["arch"]](num_classes, **options)
