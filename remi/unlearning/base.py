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


@dataclass(frozen=True)
class UnseenMasks:
    """(K, n) booleans, one row per reference model: True where that model never trained on the sample, for
    the task's forget samples and its out samples, in the task's order. Every sample has at least one."""

    forget: torch.Tensor
    out: torch.Tensor


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
    # When the references trained on some of forget and out (online shadows: random halves of a pool that
    # holds them), which of them never trained on each sample; None: none of them did.
    references_unseen: UnseenMasks | None = None

    def params(self, kind: type[MethodParams]) -> MethodParams:
        """The method's params.yaml section, typed (a method asks for the section it is written for)."""
        if not isinstance(self.method_params, kind):
            raise TypeError(f"expected {kind.__name__} params, got {type(self.method_params).__name__}")
        return self.method_params

    def log(self, step: int, values: dict[str, float]) -> None:
        if self.on_step:
            self.on_step(step, values)


def draw_plan(bounds: list[tuple[int, int]], size: int, steps: int, generator: torch.Generator,
              device: torch.device) -> list[torch.Tensor]:
    """For each (low, high) of `bounds`, a (steps, size) tensor on `device` of integers drawn uniformly from
    [low, high) (batch indices, wrong-label shifts): drawn step by step, and within a step in the order of
    `bounds`, so they are the draws a loop drawing one step at a time would make, then copied to the device
    at once: a copy per step would make the host wait for the device at every step."""
    draws = [torch.randint(low, high, (size,), generator=generator) for _ in range(steps) for low, high in bounds]
    return list(torch.stack(draws).view(steps, len(bounds), size).to(device).unbind(1))


class DeferredLog:
    """Per-step values a method computes as tensors, handed to the task's callback later, all at once.

    Reading a tensor that lives on a GPU (`.item()`) makes the host wait until every kernel queued so far
    has run; once per step, that leaves the GPU idle while the host queues the next step. Held here, the
    values are read in one go when the method has to wait anyway (ReMI's stopping checks) or when it ends:
    the same values, in the same order, and one wait per flush instead of one per value.
    """

    def __init__(self, task: UnlearningTask) -> None:
        self._task = task
        self._pending: list[tuple[int, dict[str, torch.Tensor]]] = []

    def add(self, step: int, values: dict[str, torch.Tensor]) -> None:
        if self._task.on_step:  # nobody listens (a benchmark): keep nothing
            self._pending.append((step, {name: value.detach() for name, value in values.items()}))

    def flush(self) -> None:
        if not self._pending:
            return
        read = iter(torch.stack([value.float() for _, values in self._pending for value in values.values()]).tolist())
        for step, values in self._pending:
            self._task.log(step, {name: next(read) for name in values})
        self._pending.clear()
