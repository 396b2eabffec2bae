"""Retraining from scratch on the retain set: the gold standard every audit gap is measured to."""

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


def retrain_together(task: UnlearningTask, seeds: list[int]) -> list[nn.Module]:
    """`retrain` once per seed, as one vectorised computation when the network allows it (same
    models within float tolerance; remi.networks.vectorised)."""
    models = [seeded_network(task.new_network, seed) for seed in seeds]
    return train_each(models, [task.retain] * len(models), task.train_params, seeds)
