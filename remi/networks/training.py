"""The one training recipe (target, shadows, retraining) and batched inference."""

import time
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from remi.params_schema import Train
from remi.runtime.device import model_device, rebalance_threads
from remi.runtime.precision import training_precision

EpochCallback = Callable[[int, dict[str, float]], None]


def adam(parameters: Iterable[torch.Tensor], lr: float) -> torch.optim.Adam:
    """Adam, with torch's fused kernel where it has one (CPU, CUDA): the unfused update makes about ten
    passes over every weight per step, and these networks' steps are short (`remi benchmark adam`: on a
    2-core CPU the small CNN's update takes 0.35 ms fused against 0.86 ms unfused, beside 11 ms of
    forward and backward; 2.2 ms against 8.0 ms for eight shadows stacked)."""
    parameters = list(parameters)
    fused = all(weight.device.type in ("cpu", "cuda") for weight in parameters)
    return torch.optim.Adam(parameters, lr=lr, fused=fused or None)


def train_classifier(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    train_params: Train,
    seed: int,
    on_epoch: EpochCallback | None = None,
) -> nn.Module:
    """Adam with a one-cycle schedule, no augmentation, data as in-memory tensors on the model's device.

    Deterministic in `seed` (batch order) given the model's initial weights. The forward pass and the
    loss run in `train_params.precision`; weights, gradients and Adam's state stay float32.
    """
    device = model_device(model)
    precision = training_precision(device, train_params.precision)
    inputs, labels = inputs.to(device), labels.to(device)
    epochs, batch_size = train_params.epochs, train_params.batch_size
    steps_per_epoch = -(-len(labels) // batch_size)
    optimizer = adam(model.parameters(), lr=train_params.max_lr / 25)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=train_params.max_lr, total_steps=epochs * steps_per_epoch
    )
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(epochs):
        rebalance_threads()  # a neighbour may have started since the stage chose its threads
        # Summed on the device and read once per epoch: a .item() per step makes a GPU wait for every
        # batch. float64 and the same order of additions as Python floats, so the logged values are too.
        started = time.perf_counter()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        for batch in torch.randperm(len(labels), generator=generator).to(device).split(batch_size):
            with precision:
                logits = model(inputs[batch])
                loss = F.cross_entropy(logits, labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.detach().double() * len(batch)
            correct += (logits.argmax(1) == labels[batch]).sum()
        if on_epoch:
            on_epoch(epoch, {"train_loss": loss_sum.item() / len(labels),
                             "train_accuracy": correct.item() / len(labels),
                             "epoch_seconds": time.perf_counter() - started})
    model.eval()
    return model


@torch.no_grad()
def predict_logits(model: nn.Module, inputs: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Logits on the CPU, computed in chunks on the model's device."""
    model.eval()
    device = model_device(model)
    return torch.cat([model(chunk.to(device)).cpu() for chunk in inputs.split(batch_size)])


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(1) == labels).float().mean().item()


def seeded_network(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Build a network whose initial weights depend only on `seed`."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()


def split_accuracies(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
                     splits: dict[str, torch.Tensor]) -> dict[str, float]:
    """`<split>_accuracy` for each named set of sample IDs."""
    return {f"{name}_accuracy": accuracy(predict_logits(model, inputs[ids]), labels[ids])
            for name, ids in splits.items()}
