"""Three-line access to the pipeline's artifacts, for reviewers who want to run their own attack.

    from remi.api import load_model, load_samples
    model = load_model("remi")                    # or "target", "retrain", or a model directory
    inputs, labels = load_samples("forget")       # any split: target_train, forget, audit_holdout, ...
"""

from pathlib import Path

import torch
from torch import nn

from remi.catalog import UNLEARNING_METHODS
from remi.data.datasets import load_dataset
from remi.data.splits import load_split, retain_ids
from remi.networks import checkpoints
from remi.pipeline.layout import TARGET_DIR, split_path, unlearned_dir
from remi.pipeline.params import load_params


def load_model(name: str | Path) -> nn.Module:
    """`target`, an unlearning method's name (`retrain`, `remi`, ...), or a model directory."""
    if name == "target":
        return checkpoints.load_model(TARGET_DIR)
    if name in UNLEARNING_METHODS:
        return checkpoints.load_model(unlearned_dir(str(name)))
    return checkpoints.load_model(name)


def load_samples(split: str, params_path: str | Path = "params.yaml") -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of a split written by `prepare`; `retain` is target_train minus forget."""
    params = load_params(params_path)
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    if split == "retain":
        ids = retain_ids(load_split(split_path("target_train")), load_split(split_path("forget")))
    else:
        ids = load_split(split_path(split))
    return dataset.subset(ids)
