"""Baselines that edit weights by their diagonal Fisher importance, without training.

- fisher: Fisher forgetting (Golatkar et al., CVPR 2020): Gaussian noise on every weight with
  variance alpha / F_retain, capped, so weights the retain set does not need are scrambled most.
- ssd: Selective Synaptic Dampening (Foster et al., AAAI 2024): weights far more important to the
  forget set than to the training set (F_forget > alpha * F_train) are scaled by
  min(dampening * F_train / F_forget, 1).
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from remi.params_schema import Fisher, Ssd
from remi.unlearning.base import Samples, UnlearningTask, gradient, subsample


def diagonal_fisher(model: nn.Module, samples: Samples, batch_size: int) -> list[torch.Tensor]:
    """Mean squared per-batch gradient of the loss, per parameter (the empirical diagonal Fisher)."""
    totals = [torch.zeros_like(p) for p in model.parameters()]
    batches = 0
    model.eval()
    for inputs, labels in zip(samples[0].split(batch_size), samples[1].split(batch_size), strict=True):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(inputs), labels).backward()
        for total, parameter in zip(totals, model.parameters(), strict=True):
            total += gradient(parameter).detach() ** 2
        batches += 1
    model.zero_grad(set_to_none=True)
    return [total / batches for total in totals]


def fisher(task: UnlearningTask) -> nn.Module:
    p = task.params(Fisher)
    generator = torch.Generator().manual_seed(p.seed)
    model = copy.deepcopy(task.original)
    importance = diagonal_fisher(model, subsample(task.retain, p.samples, generator), p.batch_size)
    with torch.no_grad():
        for parameter, weight in zip(model.parameters(), importance, strict=True):
            variance = (p.alpha / (weight + 1e-12)).clamp(max=p.max_variance)
            parameter.add_(variance.sqrt() * torch.randn(parameter.shape, generator=generator).to(parameter.device))
    return model.eval()


def ssd(task: UnlearningTask) -> nn.Module:
    p = task.params(Ssd)
    generator = torch.Generator().manual_seed(p.seed)
    model = copy.deepcopy(task.original)
    training = (torch.cat([task.retain[0], task.forget[0]]), torch.cat([task.retain[1], task.forget[1]]))
    train_importance = diagonal_fisher(model, subsample(training, p.samples, generator), p.batch_size)
    forget_importance = diagonal_fisher(model, subsample(task.forget, p.samples, generator), p.batch_size)
    with torch.no_grad():
        for parameter, general, specific in zip(model.parameters(), train_importance, forget_importance, strict=True):
            selected = specific > p.alpha * general
            factor = (p.dampening * general / (specific + 1e-12)).clamp(max=1.0)
            parameter.mul_(torch.where(selected, factor, torch.ones_like(factor)))
    return model.eval()
