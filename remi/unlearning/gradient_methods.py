"""Baselines that fine-tune the trained model with gradients (SalUn's table's usual suspects).

- finetune: plain training on the retain set for a few epochs (relies on catastrophic forgetting).
- neggrad_plus: descent on retain and ascent on forget, weighted by `retain_weight` (Kurmanji et al.).
- random_label: train the forget samples towards random wrong labels, retain towards their own.
- salun: random_label on the salient weights only: the `saliency_fraction` of weights with the
  largest forget-loss gradient (Fan et al., ICLR 2024).
- scrub: teacher-student (Kurmanji et al., NeurIPS 2023): the student moves away from the original
  model on forget (max-steps, the first `forget_steps`) and stays with it on retain (min-steps).
"""

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from remi.networks.training import adam, train_classifier
from remi.params_schema import Finetune, Salun, Scrub, Train, TwoSetFineTune
from remi.unlearning.base import DeferredLog, Samples, UnlearningTask, draw_plan, gradient


def finetune(task: UnlearningTask) -> nn.Module:
    p = task.params(Finetune)
    model = copy.deepcopy(task.original)
    recipe = Train(epochs=p.epochs, batch_size=p.batch_size, max_lr=p.lr, seed=p.seed,
                   precision=task.train_params.precision)
    return train_classifier(model, *task.retain, recipe, p.seed,
                            on_epoch=lambda epoch, values: task.log(epoch, values))


# (logits, labels, per-sample label shifts or None) -> the forget batch's loss term
ForgetLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def _two_set_fine_tune(task: UnlearningTask, forget_loss: ForgetLoss, wrong_labels: bool = False,
                       masks: list[torch.Tensor] | None = None) -> nn.Module:
    """Adam steps on one retain and one forget batch each; `forget_loss(logits, labels, shifts)`, where
    `shifts` (with `wrong_labels`) moves each forget label to a wrong one, drawn per step.

    With `masks`, only the weights where the mask is 1 ever receive a gradient, so only they move.
    """
    p = task.params(TwoSetFineTune)
    generator = torch.Generator().manual_seed(p.seed)
    model = copy.deepcopy(task.original).train()
    optimizer = adam(model.parameters(), lr=p.lr)
    bounds = [(0, len(task.retain[1])), (0, len(task.forget[1]))]
    if wrong_labels:  # 1 .. classes - 1: never the true label
        bounds.append((1, _class_count(model, task.forget[0])))
    retain_batches, forget_batches, *shifts = draw_plan(bounds, p.batch_size, p.steps, generator,
                                                        task.retain[1].device)
    losses = DeferredLog(task)
    for step, (retain_batch, forget_batch) in enumerate(zip(retain_batches, forget_batches, strict=True)):
        retain_loss = F.cross_entropy(model(task.retain[0][retain_batch]), task.retain[1][retain_batch])
        unlearn_loss = forget_loss(model(task.forget[0][forget_batch]), task.forget[1][forget_batch],
                                   shifts[0][step] if shifts else None)
        loss = p.retain_weight * retain_loss + (1 - p.retain_weight) * unlearn_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for parameter, mask in zip(model.parameters(), masks or [], strict=False):
            gradient(parameter).mul_(mask)
        optimizer.step()
        losses.add(step, {"retain_loss": retain_loss, "forget_term": unlearn_loss})
    losses.flush()
    return model.eval()


def neggrad_plus(task: UnlearningTask) -> nn.Module:
    return _two_set_fine_tune(task, lambda logits, labels, _: -F.cross_entropy(logits, labels))


def _towards_wrong_labels(logits: torch.Tensor, labels: torch.Tensor, shifts: torch.Tensor | None) -> torch.Tensor:
    assert shifts is not None  # drawn by _two_set_fine_tune with wrong_labels
    return F.cross_entropy(logits, (labels + shifts) % logits.shape[1])  # never the true label


def _class_count(model: nn.Module, inputs: torch.Tensor) -> int:
    """How many classes `model` outputs, from one sample (in eval mode, so batch norm's statistics stay)."""
    was_training = model.training
    with torch.no_grad():
        classes = model.eval()(inputs[:1]).shape[1]
    model.train(was_training)
    return classes


def random_label(task: UnlearningTask) -> nn.Module:
    return _two_set_fine_tune(task, _towards_wrong_labels, wrong_labels=True)


def saliency_masks(model: nn.Module, forget: Samples, fraction: float, batch_size: int = 256) -> list[torch.Tensor]:
    """1 for the `fraction` of all weights with the largest |d forget-loss / d weight|, else 0."""
    model.zero_grad(set_to_none=True)
    for inputs, labels in zip(forget[0].split(batch_size), forget[1].split(batch_size), strict=True):
        (F.cross_entropy(model(inputs), labels, reduction="sum") / len(forget[1])).backward()
    saliency = [gradient(p).abs() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    flat = torch.cat([s.flatten() for s in saliency])
    threshold = flat.kthvalue(max(1, round((1 - fraction) * len(flat)))).values
    return [(s > threshold).float() for s in saliency]


def salun(task: UnlearningTask) -> nn.Module:
    masks = saliency_masks(copy.deepcopy(task.original), task.forget, task.params(Salun).saliency_fraction)
    return _two_set_fine_tune(task, _towards_wrong_labels, wrong_labels=True, masks=masks)


def scrub(task: UnlearningTask) -> nn.Module:
    p = task.params(Scrub)
    generator = torch.Generator().manual_seed(p.seed)
    teacher = task.original.eval()
    student = copy.deepcopy(task.original).train()
    optimizer = adam(student.parameters(), lr=p.lr)

    def divergence(inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = F.log_softmax(teacher(inputs), dim=1)
        return F.kl_div(F.log_softmax(student(inputs), dim=1), target, log_target=True, reduction="batchmean")

    retain_batches, forget_batches = draw_plan([(0, len(task.retain[1])), (0, len(task.forget[1]))], p.batch_size,
                                               p.steps, generator, task.retain[1].device)
    losses = DeferredLog(task)
    for step, (retain_batch, forget_batch) in enumerate(zip(retain_batches, forget_batches, strict=True)):
        retain_x, retain_y = task.retain[0][retain_batch], task.retain[1][retain_batch]
        forget_x = task.forget[0][forget_batch]
        if step < p.forget_steps:  # max-step: away from the teacher on forget
            optimizer.zero_grad(set_to_none=True)
            (-divergence(forget_x)).backward()
            optimizer.step()
        # min-step: close to the teacher, and correct, on retain
        retain_loss = divergence(retain_x) + F.cross_entropy(student(retain_x), retain_y)
        optimizer.zero_grad(set_to_none=True)
        retain_loss.backward()
        optimizer.step()
        losses.add(step, {"retain_loss": retain_loss})
    losses.flush()
    return student.eval()
