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

import torch
import torch.nn.functional as F
from torch import nn

from remi.networks.training import adam, train_classifier
from remi.params_schema import Finetune, Salun, Scrub, Train, TwoSetFineTune
from remi.unlearning.base import DeferredLog, Samples, UnlearningTask, gradient


def finetune(task: UnlearningTask) -> nn.Module:
    p = task.params(Finetune)
    model = copy.deepcopy(task.original)
    recipe = Train(epochs=p.epochs, batch_size=p.batch_size, max_lr=p.lr, seed=p.seed,
                   precision=task.train_params.precision)
    return train_classifier(model, *task.retain, recipe, p.seed,
                            on_epoch=lambda epoch, values: task.log(epoch, values))


def _batches(samples: Samples, batch_size: int, steps: int, generator: torch.Generator):
    for _ in range(steps):
        picked = torch.randint(len(samples[1]), (batch_size,), generator=generator).to(samples[1].device)
        yield samples[0][picked], samples[1][picked]


def _two_set_fine_tune(task: UnlearningTask, forget_loss, masks: list[torch.Tensor] | None = None) -> nn.Module:
    """Adam steps on one retain and one forget batch each; `forget_loss(logits, labels, generator)`.

    With `masks`, only the weights where the mask is 1 ever receive a gradient, so only they move.
    """
    p = task.params(TwoSetFineTune)
    generator = torch.Generator().manual_seed(p.seed)
    model = copy.deepcopy(task.original).train()
    optimizer = adam(model.parameters(), lr=p.lr)
    pairs = zip(_batches(task.retain, p.batch_size, p.steps, generator),
                _batches(task.forget, p.batch_size, p.steps, generator), strict=True)
    losses = DeferredLog(task)
    for step, ((retain_x, retain_y), (forget_x, forget_y)) in enumerate(pairs):
        retain_loss = F.cross_entropy(model(retain_x), retain_y)
        unlearn_loss = forget_loss(model(forget_x), forget_y, generator)
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


def _towards_wrong_labels(logits: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    classes = logits.shape[1]
    shift = torch.randint(1, classes, labels.shape, generator=generator).to(labels.device)
    return F.cross_entropy(logits, (labels + shift) % classes)  # never the true label


def random_label(task: UnlearningTask) -> nn.Module:
    return _two_set_fine_tune(task, _towards_wrong_labels)


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
    return _two_set_fine_tune(task, _towards_wrong_labels, masks)


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

    batches = zip(_batches(task.retain, p.batch_size, p.steps, generator),
                  _batches(task.forget, p.batch_size, p.steps, generator), strict=True)
    losses = DeferredLog(task)
    for step, ((retain_x, retain_y), (forget_x, _)) in enumerate(batches):
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
