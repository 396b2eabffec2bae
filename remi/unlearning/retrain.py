"""Retraining from scratch on the retain set: the gold standard every audit gap is measured to."""

import torch
from torch import nn

from remi.networks.training import seeded_network, train_classifier
from remi.networks.vectorised import train_each
from remi.params_schema import Retrain
from remi.unlearning.base import UnlearningTask


def retrain(task: UnlearningTask) -> nn.Module:
    seed = task.params(Retrain).seed
    model = seeded_network(task.new_network, seed)
    return train_classifier(model, *task.retain, task.train_params, seed,
                            on_epoch=lambda epoch, values: task.log(epoch, values))


def retrain_together(task: UnlearningTask, seeds: list[int], device: torch.device) -> list[nn.Module]:
    """`retrain` once per seed on `device`, as one vectorised computation when the network allows it
    (same models within float tolerance; remi.networks.vectorised). `device` is where this process
    computes, which for a task sent to another process (remi.runtime.executors) need not be the one
    `task.new_network` was built for."""
    models = [seeded_network(task.new_network, seed).to(device) for seed in seeds]
    return train_each(models, [task.retain] * len(models), task.train_params, seeds)
