"""What every unlearning method receives."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar, cast

import torch
from torch import nn

from remi.attacks.shadow_attack_model import AttackModel, ClassGaussians
from remi.params_schema import Retrain, Section, Train

Samples = tuple[torch.Tensor, torch.Tensor]  # (inputs, labels)
SampleTensors = TypeVar("SampleTensors", bound=tuple[torch.Tensor, ...])  # (inputs, labels, per-sample extras)
StepCallback = Callable[[int, dict[str, float]], None]
MethodParams = TypeVar("MethodParams", bound=Section)


def gradient(parameter: torch.Tensor) -> torch.Tensor:
    """A parameter's gradient after backward() (every parameter of these networks gets one)."""
    if parameter.grad is None:
        raise RuntimeError("expected a gradient: call backward() on a loss that uses every parameter")
    return parameter.grad


def subsample(samples: SampleTensors, count: int, generator: torch.Generator) -> SampleTensors:
    """At most `count` samples, drawn without replacement (every tensor indexed alike: inputs, labels and
    whatever else is per sample)."""
    picked = torch.randperm(len(samples[1]), generator=generator)[:count].to(samples[1].device)
    return cast(SampleTensors, tuple(tensor[picked] for tensor in samples))


@dataclass
class UnlearningTask:
    """The trained model, the three sample sets, and what a method may need beyond them."""

    original: nn.Module
    retain: Samples
    forget: Samples
    out: Samples
    attack: AttackModel
    class_gaussians: ClassGaussians | None  # non-member signal statistics from the shadows
    # A freshly initialised network of the same architecture, on the CPU (callers move it): small and
    # picklable, so an executor can send it to another process (remi.runtime.executors).
    new_network: Callable[[], nn.Module]
    train_params: Train
    method_params: Section = field(default_factory=lambda: Retrain(seed=0))
    on_step: StepCallback | None = None  # per-step curves, e.g. for MLflow
    # Models of the same task that never trained on retain, forget or out (the shadows): what an unseen
    # model outputs per sample, for methods that take each sample's own reference point.
    references: list[nn.Module] = field(default_factory=list)

    def params(self, kind: type[MethodParams]) -> MethodParams:
        """The method's params.yaml section, typed (a method asks for the section it is written for)."""
        if not isinstance(self.method_params, kind):
            raise TypeError(f"expected {kind.__name__} params, got {type(self.method_params).__name__}")
        return self.method_params

    def log(self, step: int, values: dict[str, float]) -> None:
        if self.on_step:
            self.on_step(step, values)
