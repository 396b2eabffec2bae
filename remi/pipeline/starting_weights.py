"""Load the starting model's network (remi/pipeline/starting_model.py), checked against its manifest."""

import torch
from torch import nn

from remi.networks import MODEL_FILE
from remi.networks.checkpoints import ArtifactError, load_model
from remi.pipeline.starting_model import BASE_MANIFEST, StartingModel
from remi.runtime.files import file_md5


def load_starting_model(start: StartingModel, device: torch.device) -> nn.Module:
    """The starting model's network; a released one is checked against the manifest's md5 first."""
    if start.is_target:
        return load_model(start.directory, device)
    weights = start.directory / MODEL_FILE
    if not weights.is_file() or file_md5(weights) != start.model_md5:
        raise ArtifactError(f"{weights} is not the released version {start.registered_version} that "
                            f"{BASE_MANIFEST} names: fetch it with `dvc pull {start.directory}.dvc`.")
    return load_model(start.directory, device)
