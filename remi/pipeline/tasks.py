"""Assemble an unlearning task from the pipeline's artifacts on disk."""

from functools import partial

import torch
from torch import nn

from remi.attacks.checkpoints import load_attack, load_class_gaussians
from remi.data.datasets import Dataset
from remi.data.splits import load_split, retain_ids
from remi.networks.architectures import build_network
from remi.networks.checkpoints import load_model
from remi.params_schema import Params, Remi
from remi.pipeline.layout import ATTACK_DIR, shadow_dir, split_path
from remi.pipeline.starting_model import read_starting_model, starting_model_for
from remi.pipeline.starting_weights import load_starting_model
from remi.unlearning import UnlearningTask
from remi.unlearning.base import Samples, StepCallback


def load_task(params: Params, dataset: Dataset, method: str, device: torch.device,
              on_step: StepCallback | None = None, reference_shadows: range | None = None) -> UnlearningTask:
    """The starting model (the target, or the release sequential unlearning continues from), the attack,
    and the samples named by data/splits/, all on `device`: retain excludes the whole forget set, and
    forget holds only the samples the starting model does not honour yet."""
    target_train, forget = load_split(split_path("target_train")), load_split(split_path("forget"))
    start = starting_model_for(method)
    honoured = torch.tensor(start.honoured_ids, dtype=torch.long)

    return UnlearningTask(
        # Retraining ignores it but still gets the model it replaces: once the original target is
        # purged, that is the only one left to load.
        original=load_starting_model(read_starting_model(), device),
        retain=samples_on(dataset, retain_ids(target_train, forget), device),
        forget=samples_on(dataset, forget[~torch.isin(forget, honoured)], device),
        out=samples_on(dataset, load_split(split_path("out")), device),
        attack=load_attack(ATTACK_DIR, device),
        class_gaussians=load_class_gaussians(ATTACK_DIR, device),
        new_network=partial(build_network, params.model, dataset.input_shape, dataset.num_classes),
        train_params=params.train,
        method_params=params.method(method),
        on_step=on_step,
        references=_references(params, method, device, reference_shadows),
    )


def samples_on(dataset: Dataset, ids: torch.Tensor, device: torch.device) -> Samples:
    """The samples `ids` of `dataset` (inputs, labels) on `device`."""
    inputs, labels = dataset.subset(ids)
    return inputs.to(device), labels.to(device)


def _references(params: Params, method: str, device: torch.device, chosen: range | None) -> list[nn.Module]:
    """The shadows (all, unless `chosen` names some), for a ReMI that measures each sample from them, matches
    their predictions or aims its stop rule at them; loaded only then, so no other method's stage reads
    models/shadows."""
    remi = params.method(method)
    if isinstance(remi, Remi) and (remi.signal_reference == "shadows" or remi.lambda_unseen > 0
                                   or remi.stop_target == "shadows"):
        return [load_model(shadow_dir(i), device) for i in (range(params.shadows.count) if chosen is None else chosen)]
    return []
