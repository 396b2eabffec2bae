"""Wall-clock timing of work on a device, which on a GPU means waiting for its queue on both sides."""

import time
from collections.abc import Callable
from typing import TypeVar

import torch

from remi.runtime.device import synchronize

Result = TypeVar("Result")


def timed(device: torch.device, work: Callable[[], Result]) -> tuple[Result, float]:
    """`work()`'s result and its seconds, with the device idle at the start and the end."""
    synchronize(device)
    started = time.perf_counter()
    result = work()
    synchronize(device)
    return result, time.perf_counter() - started
