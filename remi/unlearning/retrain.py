"""Retraining from scratch on the retain set: the gold standard every audit gap is measured to."""

from torch import nn

from remi.networks.training import seeded_network, train_classifier
from remi.params_schema import Retrain
from remi.unlearning.base import UnlearningTask


def retrain(task: UnlearningTask) -> nn.Module:
    seed = task.params(Retrain).seed
    model = seeded_network(task.new_network, seed)
    return train_classifier(model, *task.retain, task.train_params, seed,
                            on_epoch=lambda epoch, values: task.log(epoch, values))
