"""Name -> unlearning method. A new method is one function `(UnlearningTask) -> nn.Module` here."""

import time
from collections.abc import Callable

from torch import nn

from remi.unlearning.base import UnlearningTask
from remi.unlearning.remi import remi
from remi.unlearning.retrain import retrain

METHODS: dict[str, Callable[[UnlearningTask], nn.Module]] = {"retrain": retrain, "remi": remi}


def run_method(name: str, task: UnlearningTask) -> tuple[nn.Module, float]:
    """Run one method and time only the unlearning call (wall seconds), as the audit compares."""
    started = time.perf_counter()
    model = METHODS[name](task)
    return model, time.perf_counter() - started
