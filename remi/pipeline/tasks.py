"""Assemble an unlearning task from the pipeline's artifacts on disk."""


import torch
from torch import nn

from remi.attacks.checkpoints import load_attack, load_class_gaussians
from remi.data.datasets import Dataset
from remi.data.splits import load_split, retain_ids
from remi.networks import MODEL_FILE
from remi.networks.architectures import build_network
from remi.networks.checkpoints import ArtifactError, load_model
from remi.params_schema import Params
from remi.pipeline.layout import ATTACK_DIR, TARGET_DIR, split_path
from remi.pipeline.starting_model import BASE_MANIFEST, BASE_WEIGHTS_DIR, StartingModel, starting_model_for
from remi.runtime.files import file_md5
from remi.unlearning import UnlearningTask
from remi.unlearning.base import Samples, StepCallback


def load_starting_model(start: StartingModel, device: torch.device) -> nn.Module:
    """The starting model's network; a released one is checked against the manifest's md5 first."""
    if start.is_target:
        return load_model(TARGET_DIR, device)
    weights = BASE_WEIGHTS_DIR / MODEL_FILE
    if not weights.is_file() or file_md5(weights) != start.model_md5:
        raise ArtifactError(f"{weights} is not the released version {start.registered_version} that "
                            f"{BASE_MANIFEST} names: fetch it with `dvc pull {BASE_WEIGHTS_DIR}.dvc`.")
    return load_model(BASE_WEIGHTS_DIR, device)


def load_task(params: Params, dataset: Dataset, method: str, device: torch.device,
              on_step: StepCallback | None = None) -> UnlearningTask:
    """The starting model (the target, or the release sequential unlearning continues from), the attack,
    and the samples named by data/splits/, all on `device`: retain excludes the whole forget set, and
    forget holds only the samples the starting model does not honour yet."""
    target_train, forget = load_split(split_path("target_train")), load_split(split_path("forget"))
    start = starting_model_for(method)
    honoured = torch.tensor(start.honoured_ids, dtype=torch.long)

    def on_device(ids: torch.Tensor) -> Samples:
        inputs, labels = dataset.subset(ids)
        return inputs.to(device), labels.to(device)

    return UnlearningTask(
        original=load_starting_model(start, device),
        retain=on_device(retain_ids(target_train, forget)),
        forget=on_device(forget[~torch.isin(forget, honoured)]),
        out=on_device(load_split(split_path("out"))),
        attack=load_attack(ATTACK_DIR, device),
        class_gaussians=load_class_gaussians(ATTACK_DIR, device),
        new_network=lambda: build_network(params.model, dataset.input_shape, dataset.num_classes).to(device),
        train_params=params.train,
        method_params=params.method(method),
        on_step=on_step,
    )
