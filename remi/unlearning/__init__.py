"""Unlearning methods behind one interface: `METHODS[name](task) -> unlearned model`; `unlearn` and
`run_method` (timed) also handle a task with nothing left to forget."""

from remi.unlearning.base import UnlearningTask
from remi.unlearning.registry import METHODS, run_method, unlearn

__all__ = ["METHODS", "UnlearningTask", "run_method", "unlearn"]
