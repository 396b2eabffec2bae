"""ReMI's pluggable privacy-leakage estimators (docs/design.md, "The method").

An estimator turns the model's logits on labelled samples into a differentiable member score
(higher = more member-like). ReMI pushes it down on the forget batch (the MI term) and stops when it
no longer ranks forget above out. Each is one function `(task, calibration) -> score`, where
`calibration` is the original model's (logits, labels) on out samples; registered by name in
ESTIMATORS and selected with `remi.estimator`.
"""

from collections.abc import Callable

import torch

from remi import catalog
from remi.attacks.signals import logit_scaled_confidence
from remi.catalog import check_registry
from remi.errors import ParamsError
from remi.unlearning.base import UnlearningTask

LeakageScore = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Calibration = tuple[torch.Tensor, torch.Tensor]


def shadow_attack(task: UnlearningTask, calibration: Calibration) -> LeakageScore:
    """The frozen shadow-trained attack model's member log-odds."""
    return task.attack


def loss_threshold(task: UnlearningTask, calibration: Calibration) -> LeakageScore:
    """Confidence threshold (Yeom et al. style): the logit-scaled confidence relative to the original
    model's median on out samples, in units of its spread there."""
    out_signal = logit_scaled_confidence(*calibration)
    threshold, scale = out_signal.median(), out_signal.std().clamp_min(1e-3)
    return lambda logits, labels: (logit_scaled_confidence(logits, labels) - threshold) / scale


def class_gaussian(task: UnlearningTask, calibration: Calibration) -> LeakageScore:
    """Standard deviations above the class's non-member mean, from per-class Gaussians fitted to the
    shadows in train_attack. LiRA-like, but per class rather than per example: not the audit's LiRA."""
    if task.class_gaussians is None:
        raise ParamsError("remi.estimator = class_gaussian needs the shadows' class Gaussians (models/attack).")
    return task.class_gaussians


ESTIMATORS: dict[str, Callable[[UnlearningTask, Calibration], LeakageScore]] = {
    "shadow_attack": shadow_attack, "loss_threshold": loss_threshold, "class_gaussian": class_gaussian}
check_registry("leakage estimator", ESTIMATORS, catalog.LEAKAGE_ESTIMATORS)
