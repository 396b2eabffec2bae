"""The training recipe of `training.train_classifier`, for K networks of one architecture at once.

Reference models (shadows, forgetting quality's retrainings) are many small networks trained by the
same recipe on equally many samples. Trained one after the other, each step is a handful of small
kernels whose fixed cost dominates; stacked along a leading model axis (`torch.func.vmap` over
`functional_call`) the K forward and backward passes run as one batched computation.

Model k sees exactly what `train_classifier(models[k], *data[k], train_params, seeds[k])` would show it:
its own initial weights, its own samples, its own batch order from its own seed, the same learning-rate
schedule. Adam is elementwise, so one Adam over the stacked parameters is K independent Adams, and the
sum of the K losses has each model's own gradient in its slice. What differs is only the order of
floating-point operations inside the batched kernels: the models agree with one-by-one training
within float tolerance, not bit for bit (tests/test_vectorised_training.py).

Networks with buffers (batch norm's running statistics) or random layers (dropout) are not
vectorised: `can_vectorise` says so and callers train those one by one.
"""

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from remi.networks.training import EpochCallback, adam, train_classifier
from remi.params_schema import Train
from remi.runtime.device import model_device, rebalance_threads
from remi.runtime.precision import training_precision

Samples = tuple[torch.Tensor, torch.Tensor]  # inputs, labels


def can_vectorise(model: nn.Module) -> bool:
    """True when a step of the network is a pure function of its parameters and inputs."""
    has_buffers = any(True for _ in model.buffers())
    is_random = any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules())
    return not has_buffers and not is_random


def in_blocks(items: list[int], size: int) -> list[list[int]]:
    """`items` cut into consecutive blocks of `size` (the last may be shorter): the fixed groups that
    train as one computation, so a model's bits depend on its block and nothing else."""
    return [items[start:start + size] for start in range(0, len(items), size)]


def train_each(models: list[nn.Module], data: list[Samples], train_params: Train, seeds: list[int],
               on_epoch: EpochCallback | None = None) -> list[nn.Module]:
    """`train_classifiers` when there are several models and the network allows it, else
    `train_classifier` for each: what callers with a block of reference models want."""
    if len(models) > 1 and can_vectorise(models[0]):
        return train_classifiers(models, data, train_params, seeds, on_epoch)
    return [train_classifier(model, *samples, train_params, seed, on_epoch)
            for model, samples, seed in zip(models, data, seeds, strict=True)]


def train_classifiers(models: list[nn.Module], data: list[Samples], train_params: Train, seeds: list[int],
                      on_epoch: EpochCallback | None = None) -> list[nn.Module]:
    """Train `models[k]` on `data[k]` with batch order from `seeds[k]`, all K as one computation.

    The models are updated in place and returned. Every model must have the same architecture, every
    data set the same number of samples (so all models take the same steps), on the models' device.
    `on_epoch` gets the mean over models of each epoch's loss and accuracy.
    """
    if not (len(models) == len(data) == len(seeds)) or not models:
        raise ValueError(f"need one data set and one seed per model: {len(models)} models, {len(data)} data "
                         f"sets, {len(seeds)} seeds")
    sizes = {len(labels) for _, labels in data}
    if len(sizes) != 1:
        raise ValueError(f"vectorised training needs equally many samples per model, got sizes {sorted(sizes)}")
    if not all(can_vectorise(m) for m in models):
        raise ValueError("a network with buffers or dropout cannot be trained vectorised; train it one by one")
    device = model_device(models[0])
    precision = training_precision(device, train_params.precision)
    count, size = len(models), sizes.pop()
    inputs = torch.stack([x for x, _ in data]).to(device)  # (K, N, ...)
    labels = torch.stack([y for _, y in data]).to(device)  # (K, N)
    parameters, _ = stack_module_state(models)  # leaves of shape (K, ...) that require grad
    skeleton = copy.deepcopy(models[0]).to("meta")  # the architecture only; weights come from `parameters`

    def step_loss(weights: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = functional_call(skeleton, weights, (x,))
        return F.cross_entropy(logits, y), (logits.argmax(1) == y).sum()

    batched_loss = vmap(step_loss)
    epochs, batch_size = train_params.epochs, train_params.batch_size
    steps_per_epoch = -(-size // batch_size)
    optimizer = adam(parameters.values(), lr=train_params.max_lr / 25)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=train_params.max_lr, total_steps=epochs * steps_per_epoch
    )
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    rows = torch.arange(count, device=device)[:, None]
    for epoch in range(epochs):
        rebalance_threads()  # a neighbour may have started since the stage chose its threads
        started = time.perf_counter()
        loss_sum, correct = torch.zeros(count, device=device), torch.zeros(count, device=device)
        orders = torch.stack([torch.randperm(size, generator=g) for g in generators]).to(device)  # (K, N)
        for batch in orders.split(batch_size, dim=1):  # (K, B): model k's batch in row k
            with precision:
                losses, hits = batched_loss(parameters, inputs[rows, batch], labels[rows, batch])
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()  # model k's parameters get only model k's loss gradient
            optimizer.step()
            schedule.step()
            loss_sum += losses.detach() * batch.shape[1]
            correct += hits
        if on_epoch:
            on_epoch(epoch, {"train_loss": (loss_sum.sum() / (count * size)).item(),
                             "train_accuracy": (correct.sum() / (count * size)).item(),
                             "epoch_seconds": time.perf_counter() - started})
    with torch.no_grad():
        for index, model in enumerate(models):
            for name, value in model.named_parameters():
                value.copy_(parameters[name][index])
            model.eval()
    return models
