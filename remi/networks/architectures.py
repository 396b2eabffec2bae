"""Networks, by name. Every network maps a batch of inputs to class logits.

Each is an `nn.Sequential` of blocks, so ReMI can split it into a frozen prefix and a trainable head
(`remi.trainable_layers`). A network's options live in params.yaml under `model.<arch>`.
"""

import math
from collections.abc import Callable, Sequence

from torch import nn

from remi import catalog
from remi.catalog import check_registry
from remi.params_schema import Model, Section

InputShape = Sequence[int]  # one sample's shape: (channels, height, width) or (features,)


def small_cnn(input_shape: InputShape, num_classes: int, conv1_channels: int, conv2_channels: int,
              hidden_units: int) -> nn.Module:
    """Two stride-2 3x3 convs (28 -> 14 -> 7) and one hidden layer: fast on a 2-core CPU.

    Stride-2 convs replace conv + max-pool: the same downsampling for a quarter of the conv FLOPs.
    """
    channels, height, width = input_shape
    quarter = math.ceil(height / 4) * math.ceil(width / 4)  # after two stride-2 convs (padding 1)
    return nn.Sequential(
        nn.Conv2d(channels, conv1_channels, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(conv1_channels, conv2_channels, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(conv2_channels * quarter, hidden_units), nn.ReLU(),
        nn.Linear(hidden_units, num_classes),
    )


def mlp(input_shape: InputShape, num_classes: int, hidden_units: list[int]) -> nn.Module:
    """Fully connected ReLU layers over the flattened input (MNIST-5k, tabular data)."""
    features = math.prod(input_shape)
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden_units:
        layers += [nn.Linear(features, width), nn.ReLU()]
        features = width
    return nn.Sequential(*layers, nn.Linear(features, num_classes))


def _conv_bn(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())


class BasicBlock(nn.Module):
    """ResNet's two 3x3 convs with an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(in_channels, out_channels, stride),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels))
        self.shortcut = (nn.Identity() if stride == 1 and in_channels == out_channels else nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)))

    def forward(self, x):
        return (self.body(x) + self.shortcut(x)).relu()


class Residual(nn.Module):
    """x + f(x): ResNet-9's residual pair of conv-bn-relu layers."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(channels, channels), _conv_bn(channels, channels))

    def forward(self, x):
        return x + self.body(x)


def resnet18(input_shape: InputShape, num_classes: int, width: int) -> nn.Module:
    """ResNet-18 in its CIFAR form (3x3 stem, no max-pool): 4 stages of 2 blocks, widths w..8w."""
    blocks: list[nn.Module] = [_conv_bn(input_shape[0], width)]
    channels = width
    for stage in range(4):
        out_channels = width * 2 ** stage
        for block in range(2):
            blocks.append(BasicBlock(channels, out_channels, 2 if stage > 0 and block == 0 else 1))
            channels = out_channels
    return nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


def resnet9(input_shape: InputShape, num_classes: int, width: int) -> nn.Module:
    """The fast ResNet-9 of the DAWNBench CIFAR-10 entries (widths w, 2w, 4w, 8w): 94% in minutes on a GPU."""
    return nn.Sequential(
        _conv_bn(input_shape[0], width),
        nn.Sequential(_conv_bn(width, 2 * width), nn.MaxPool2d(2)), Residual(2 * width),
        nn.Sequential(_conv_bn(2 * width, 4 * width), nn.MaxPool2d(2)),
        nn.Sequential(_conv_bn(4 * width, 8 * width), nn.MaxPool2d(2)), Residual(8 * width),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8 * width, num_classes),
    )


NETWORKS: dict[str, Callable[..., nn.Module]] = {"small_cnn": small_cnn, "mlp": mlp, "resnet18": resnet18,
                                                 "resnet9": resnet9}
check_registry("network", NETWORKS, catalog.NETWORKS)


def build_network(model_params: Model, input_shape: InputShape, num_classes: int) -> nn.Module:
    """The network named by params.yaml's `model.arch`, with the options under `model.<arch>`."""
    arch = model_params.arch
    options: Section = getattr(model_params, arch)
    return NETWORKS[arch](tuple(input_shape), num_classes, **options.model_dump())
