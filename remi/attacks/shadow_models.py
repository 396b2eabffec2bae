"""Shadow models: the owner's stand-ins for the target, each trained on a random half of a pool.

Shadow i depends only on (shadows.seed, i), the recipe and the pool, so adding shadows keeps the
existing ones: a fingerprint of exactly those inputs decides whether a saved shadow can be reused.
"""

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from remi.data.datasets import Dataset
from remi.networks.architectures import build_network
from remi.networks.training import EpochCallback, predict_logits, seeded_network, train_classifier
from remi.params_schema import Params

# Library files whose code shapes a shadow; editing one invalidates every saved shadow.
_RECIPE_SOURCES = ("networks/architectures.py", "networks/training.py", "attacks/shadow_models.py")


def shadow_seed(base_seed: int, shadow_id: int) -> int:
    return base_seed * 10_000 + shadow_id


def shadow_membership(pool_count: int, base_seed: int, shadow_id: int) -> torch.Tensor:
    """Boolean mask over the pool: the random half shadow `shadow_id` trains on."""
    generator = torch.Generator().manual_seed(shadow_seed(base_seed, shadow_id))
    is_member = torch.zeros(pool_count, dtype=torch.bool)
    is_member[torch.randperm(pool_count, generator=generator)[: pool_count // 2]] = True
    return is_member


def shadow_fingerprint(shadow_id: int, params: Params, pool_md5: str, data_digest: str) -> str:
    library = Path(__file__).resolve().parents[1]  # remi/
    arch = params.model.arch
    recipe = {
        "shadow_id": shadow_id, "seed": params.shadows.seed,
        "model": {"arch": arch, "options": getattr(params.model, arch).model_dump()},
        # train.seed seeds the target only (a shadow's comes from shadows.seed): a seed sweep over
        # train.seed keeps the shadows.
        "train": params.train.model_dump(exclude={"seed"}),
        "pool_md5": pool_md5, "data_digest": data_digest,
        "code": [hashlib.md5((library / name).read_bytes()).hexdigest() for name in _RECIPE_SOURCES],
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def train_shadow(dataset: Dataset, pool: torch.Tensor, shadow_id: int, params: Params, device: torch.device,
                 on_epoch: EpochCallback | None = None) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Train one shadow on `device`; return it and its outputs (on the CPU) on the whole pool with
    the membership mask."""
    seed = shadow_seed(params.shadows.seed, shadow_id)
    is_member = shadow_membership(len(pool), params.shadows.seed, shadow_id)
    model = seeded_network(lambda: build_network(params.model, dataset.input_shape, dataset.num_classes), seed)
    model.to(device)
    train_classifier(model, *dataset.subset(pool[is_member]), params.train, seed, on_epoch)
    outputs = {"sample_ids": pool, "logits": predict_logits(model, dataset.inputs[pool]),
               "labels": dataset.labels[pool], "is_member": is_member}
    return model, outputs
