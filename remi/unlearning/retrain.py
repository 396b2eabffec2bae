"""Retraining from scratch on the retain set: the gold standard every audit gap is measured to."""

from collections.abc import Callable

import torch
from torch import nn

from remi.networks.training import seeded_network, train_classifier
from remi.networks.vectorised import train_each
from remi.params_schema import Retrain, Train
from remi.unlearning.base import Samples, UnlearningTask


def retrain(task: UnlearningTask) -> nn.Module:
    seed = task.params(Retrain).seed
    model = seeded_network(task.new_network, seed).to(task.retain[0].device)
    return train_classifier(model, *task.retain, task.train_params, seed,
                            on_epoch=lambda epoch, values: task.log(epoch, values))


def retrain_together(new_network: Callable[[], nn.Module], retain: Samples, train_params: Train, seeds: list[int],
                     device: torch.device) -> list[nn.Module]:
    """`retrain` once per seed on `device`, as one vectorised computation when the network allows it
    (same models within float tolerance; remi.networks.vectorised). It takes only what retraining
    reads, not a whole task, so an executor can send a block to another process cheaply."""
    models = [seeded_network(new_network, seed).to(device) for seed in seeds]
    return train_each(models, [retain] * len(models), train_params, seeds)
