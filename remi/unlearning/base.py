"""What every unlearning method receives."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from remi.attacks import AttackModel, ClassGaussians

Samples = tuple[torch.Tensor, torch.Tensor]  # (inputs, labels)
StepCallback = Callable[[int, dict[str, float]], None]


def subsample(samples: Samples, count: int, generator: torch.Generator) -> Samples:
    """At most `count` samples, drawn without replacement."""
    picked = torch.randperm(len(samples[1]), generator=generator)[:count].to(samples[1].device)
    return samples[0][picked], samples[1][picked]


@dataclass
class UnlearningTask:
    """The trained model, the three sample sets, and what a method may need beyond them."""

    original: nn.Module
    retain: Samples
    forget: Samples
    out: Samples
    attack: AttackModel
    class_gaussians: ClassGaussians | None  # non-member signal statistics from the shadows
    new_network: Callable[[], nn.Module]  # a freshly initialised network of the same architecture
    train_params: dict[str, Any]
    method_params: dict[str, Any] = field(default_factory=dict)
    on_step: StepCallback | None = None  # per-step curves, e.g. for MLflow

    def log(self, step: int, values: dict[str, float]) -> None:
        if self.on_step:
            self.on_step(step, values)
