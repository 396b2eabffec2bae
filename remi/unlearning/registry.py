"""Name -> unlearning method. A new method is one function `(UnlearningTask) -> nn.Module` here."""

import copy
import time
from collections.abc import Callable

import torch
from torch import nn

from remi.catalog import REFERENCE, UNLEARNING_METHODS, check_registry
from remi.networks.training import adam
from remi.runtime.device import model_device, synchronize
from remi.unlearning.base import UnlearningTask
from remi.unlearning.gradient_methods import finetune, neggrad_plus, random_label, salun, scrub
from remi.unlearning.importance_methods import fisher, ssd
from remi.unlearning.remi import remi
from remi.unlearning.retrain import retrain

METHODS: dict[str, Callable[[UnlearningTask], nn.Module]] = {
    "retrain": retrain, "remi": remi, "finetune": finetune, "neggrad_plus": neggrad_plus,
    "random_label": random_label, "salun": salun, "scrub": scrub, "fisher": fisher, "ssd": ssd,
}
check_registry("unlearning method", METHODS, UNLEARNING_METHODS)


def _load_lazy_modules() -> None:
    """The first optimizer a process builds imports parts of torch lazily (about 1 s here).

    That is process start-up, not unlearning: pay it before the clock starts, for every method alike.
    """
    adam([torch.zeros(1, requires_grad=True)], lr=0.0)


def unlearn(name: str, task: UnlearningTask) -> nn.Module:
    """`name`'s model for `task`. With nothing to forget (a sequential run whose starting model already
    honours the whole forget set) that is the starting model itself, for every method but retraining."""
    if name != REFERENCE and len(task.forget[1]) == 0:
        return copy.deepcopy(task.original)
    return METHODS[name](task)


def run_method(name: str, task: UnlearningTask) -> tuple[nn.Module, float]:
    """Run one method and time only the unlearning call (wall seconds), as the audit compares.

    The clock stops once the device has finished the method's work, not when the last kernel
    was queued.
    """
    _load_lazy_modules()
    device = model_device(task.original)
    synchronize(device)
    started = time.perf_counter()
    model = unlearn(name, task)
    synchronize(device)
    return model, time.perf_counter() - started
