"""Assemble an unlearning task from the pipeline's artifacts on disk."""

from typing import Any

from remi.artifacts import load_attack, load_class_gaussians, load_model
from remi.datasets import Dataset
from remi.layout import ATTACK_DIR, TARGET_DIR, split_path
from remi.nets import build_network
from remi.splits import load_split, retain_ids
from remi.unlearning import UnlearningTask
from remi.unlearning.base import StepCallback


def load_task(params: dict[str, Any], dataset: Dataset, method: str,
              on_step: StepCallback | None = None) -> UnlearningTask:
    """The target, its attack, and the retain/forget/out samples named by data/splits/."""
    target_train, forget = load_split(split_path("target_train")), load_split(split_path("forget"))
    return UnlearningTask(
        original=load_model(TARGET_DIR),
        retain=dataset.subset(retain_ids(target_train, forget)),
        forget=dataset.subset(forget),
        out=dataset.subset(load_split(split_path("out"))),
        attack=load_attack(ATTACK_DIR),
        class_gaussians=load_class_gaussians(ATTACK_DIR),
        new_network=lambda: build_network(params["model"], dataset.input_shape, dataset.num_classes),
        train_params=params["train"],
        method_params=params[method],
        on_step=on_step,
    )
