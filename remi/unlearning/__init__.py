"""Unlearning methods behind one interface: `METHODS[name](task) -> unlearned model`."""

from remi.unlearning.base import UnlearningTask
from remi.unlearning.registry import METHODS, run_method

__all__ = ["METHODS", "UnlearningTask", "run_method"]
