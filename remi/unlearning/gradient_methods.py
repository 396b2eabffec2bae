"""Baselines that fine-tune the trained model with gradients (SalUn's table's usual suspects).

- finetune: plain training on the retain set for a few epochs (relies on catastrophic forgetting).
- neggrad_plus: descent on retain and ascent on forget, weighted by `retain_weight` (Kurmanji et al.).
- random_label: train the forget samples towards random wrong labels, retain towards their own.
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from remi.training import train_classifier
from remi.unlearning.base import Samples, UnlearningTask


def finetune(task: UnlearningTask) -> nn.Module:
    p = task.method_params
    model = copy.deepcopy(task.original)
    recipe = {"epochs": p["epochs"], "batch_size": p["batch_size"], "max_lr": p["lr"]}
    return train_classifier(model, *task.retain, recipe, p["seed"],
                            on_epoch=lambda epoch, values: task.log(epoch, values))


def _batches(samples: Samples, batch_size: int, steps: int, generator: torch.Generator):
    for _ in range(steps):
        picked = torch.randint(len(samples[1]), (batch_size,), generator=generator)
        yield samples[0][picked], samples[1][picked]


def _two_set_fine_tune(task: UnlearningTask, forget_loss) -> nn.Module:
    """Adam steps on one retain and one forget batch each; `forget_loss(logits, labels, generator)`."""
    p = task.method_params
    generator = torch.Generator().manual_seed(p["seed"])
    model = copy.deepcopy(task.original).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=p["lr"])
    pairs = zip(_batches(task.retain, p["batch_size"], p["steps"], generator),
                _batches(task.forget, p["batch_size"], p["steps"], generator), strict=True)
    for step, ((retain_x, retain_y), (forget_x, forget_y)) in enumerate(pairs):
        retain_loss = F.cross_entropy(model(retain_x), retain_y)
        unlearn_loss = forget_loss(model(forget_x), forget_y, generator)
        loss = p["retain_weight"] * retain_loss + (1 - p["retain_weight"]) * unlearn_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        task.log(step, {"retain_loss": retain_loss.item(), "forget_term": unlearn_loss.item()})
    return model.eval()


def neggrad_plus(task: UnlearningTask) -> nn.Module:
    return _two_set_fine_tune(task, lambda logits, labels, _: -F.cross_entropy(logits, labels))


def random_label(task: UnlearningTask) -> nn.Module:
    def towards_wrong_labels(logits: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
        classes = logits.shape[1]
        shift = torch.randint(1, classes, labels.shape, generator=generator)
        return F.cross_entropy(logits, (labels + shift) % classes)  # never the true label

    return _two_set_fine_tune(task, towards_wrong_labels)
