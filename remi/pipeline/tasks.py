"""Assemble an unlearning task from the pipeline's artifacts on disk."""

from functools import partial

import torch
from torch import nn

from remi.attacks.checkpoints import load_attack, load_class_gaussians
from remi.data.datasets import Dataset
from remi.data.splits import load_split, retain_ids
from remi.networks.architectures import build_network
from remi.networks.checkpoints import load_model, load_shadow_outputs, positions_in_pool
from remi.params_schema import Params, Remi
from remi.pipeline.layout import ATTACK_DIR, ONLINE_SHADOWS_DIR, shadow_dir, split_path
from remi.pipeline.starting_model import read_starting_model, starting_model_for
from remi.pipeline.starting_weights import load_starting_model
from remi.unlearning import UnlearningTask
from remi.unlearning.base import Samples, StepCallback, UnseenMasks


def load_task(params: Params, dataset: Dataset, method: str, device: torch.device,
              on_step: StepCallback | None = None, reference_shadows: range | None = None,
              online_references: bool = False) -> UnlearningTask:
    """The starting model (the target, or the release sequential unlearning continues from), the attack,
    and the samples named by data/splits/, all on `device`: retain excludes the whole forget set, and
    forget holds only the samples the starting model does not honour yet. ReMI's references are the
    shadows (those `reference_shadows` names), or with `online_references` the online shadows, each used
    only on the samples it never trained on, the shadows where none is (an experiment of `remi ablation` and
    `remi fq-anatomy`: the pipeline's online LiRA and U-LiRA audit with these same models)."""
    target_train, forget = load_split(split_path("target_train")), load_split(split_path("forget"))
    start = starting_model_for(method)
    honoured = torch.tensor(start.honoured_ids, dtype=torch.long)
    to_forget, out = forget[~torch.isin(forget, honoured)], load_split(split_path("out"))
    references: list[nn.Module] = []
    unseen: UnseenMasks | None = None
    if _wants_references(params, method):
        references, unseen = (_online_references(params, device, to_forget, out) if online_references
                              else (_shadows(params, device, reference_shadows), None))

    return UnlearningTask(
        # Retraining ignores it but still gets the model it replaces: once the original target is
        # purged, that is the only one left to load.
        original=load_starting_model(read_starting_model(), device),
        retain=samples_on(dataset, retain_ids(target_train, forget), device),
        forget=samples_on(dataset, to_forget, device),
        out=samples_on(dataset, out, device),
        attack=load_attack(ATTACK_DIR, device),
        class_gaussians=load_class_gaussians(ATTACK_DIR, device),
        new_network=partial(build_network, params.model, dataset.input_shape, dataset.num_classes),
        train_params=params.train,
        method_params=params.method(method),
        on_step=on_step,
        references=references,
        references_unseen=unseen,
    )


def samples_on(dataset: Dataset, ids: torch.Tensor, device: torch.device) -> Samples:
    """The samples `ids` of `dataset` (inputs, labels) on `device`."""
    inputs, labels = dataset.subset(ids)
    return inputs.to(device), labels.to(device)


def _wants_references(params: Params, method: str) -> bool:
    """Whether `method` is a ReMI that measures each sample from reference models, matches their predictions
    or aims its stop rule at them: only then are they loaded, so no other method's stage reads models/shadows."""
    remi = params.method(method)
    return isinstance(remi, Remi) and (remi.signal_reference == "shadows" or remi.lambda_unseen > 0
                                       or remi.stop_target == "shadows")


def _shadows(params: Params, device: torch.device, chosen: range | None) -> list[nn.Module]:
    """The shadows, all unless `chosen` names some."""
    return [load_model(shadow_dir(i), device) for i in (range(params.shadows.count) if chosen is None else chosen)]


def _online_references(params: Params, device: torch.device, forget: torch.Tensor, out: torch.Tensor
                       ) -> tuple[list[nn.Module], UnseenMasks]:
    """The online shadows, each to be used on the forget and out samples it never trained on (their saved
    membership bits), then the shadows, used only on the samples that every online shadow trained on (about
    one in 2^K). The online shadows trained on halves of a pool that holds the retain set, so they saw much of
    what retraining sees; the shadows saw other data."""
    count = params.online_shadows.count
    outputs = [load_shadow_outputs(shadow_dir(i, ONLINE_SHADOWS_DIR)) for i in range(count)]
    shadows = _shadows(params, device, None)
    masks = []
    for ids, what in ((forget, "forget"), (out, "out")):
        online_unseen = ~torch.stack([o["is_member"][positions_in_pool(outputs, ids, what)] for o in outputs])
        seen_by_all = ~online_unseen.any(0)
        masks.append(torch.cat([online_unseen, seen_by_all.expand(len(shadows), -1)]))
        if seen_by_all.any():
            print(f"note: {int(seen_by_all.sum())} {what} samples were in the training half of all {count} online "
                  "shadows; the shadows stand in for them.", flush=True)
    online = [load_model(shadow_dir(i, ONLINE_SHADOWS_DIR), device) for i in range(count)]
    return online + shadows, UnseenMasks(*masks)
