"""Shadow models: the owner's stand-ins for the target, each trained on a random half of a pool.

Two sets use this: `shadows` on shadow_pool (disjoint from every audited sample: the attack model's
training data and offline attacks' "out" models) and `online_shadows` on target_train + out +
audit_holdout (so that every audited sample has shadows trained with and without it: online LiRA).
Shadow i of a set depends only on (its section's seed, i), the recipe, the pool and its block (the
shadows it is trained with as one vectorised computation), so adding shadows keeps the existing ones,
save an incomplete last block: a fingerprint of exactly those inputs decides whether a saved shadow
can be reused.
"""

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from remi.data.datasets import Dataset
from remi.networks.architectures import build_network
from remi.networks.training import EpochCallback, predict_logits, seeded_network
from remi.networks.vectorised import in_blocks, train_each
from remi.params_schema import Params, Shadows
from remi.runtime.device import compute_device

# Library files whose code shapes a shadow; editing one invalidates every saved shadow (as does the dataset's
# loader, which turns the raw files into the tensors the shadows train on, and torch's version).
_RECIPE_SOURCES = ("networks/architectures.py", "networks/training.py", "networks/vectorised.py",
                   "runtime/precision.py", "attacks/shadow_models.py", "data/datasets/base.py")


def shadow_seed(base_seed: int, shadow_id: int) -> int:
    return base_seed * 10_000 + shadow_id


def shadow_membership(pool_count: int, base_seed: int, shadow_id: int) -> torch.Tensor:
    """Boolean mask over the pool: the random half shadow `shadow_id` trains on."""
    generator = torch.Generator().manual_seed(shadow_seed(base_seed, shadow_id))
    is_member = torch.zeros(pool_count, dtype=torch.bool)
    is_member[torch.randperm(pool_count, generator=generator)[: pool_count // 2]] = True
    return is_member


def shadow_fingerprint(shadow_id: int, shadows: Shadows, params: Params, pool_md5: str, data_digest: str) -> str:
    """What shadow `shadow_id` of the set `shadows` (params.shadows or params.online_shadows) is made from."""
    library = Path(__file__).resolve().parents[1]  # remi/
    arch = params.model.arch
    recipe = {
        "shadow_id": shadow_id, "seed": shadows.seed,
        # Vectorised training agrees with one-by-one only within float tolerance: the block is part
        # of how a shadow was made.
        "block": next(b for b in shadow_blocks(shadows.count, shadows.train_together) if shadow_id in b),
        "model": {"arch": arch, "options": getattr(params.model, arch).model_dump()},
        # train.seed seeds the target only (a shadow's comes from shadows.seed): a seed sweep over
        # train.seed keeps the shadows.
        "train": params.train.model_dump(exclude={"seed"}),
        "pool_md5": pool_md5, "data_digest": data_digest, "torch": torch.__version__,
        "code": [hashlib.md5((library / name).read_bytes()).hexdigest()
                 for name in (*_RECIPE_SOURCES, f"data/datasets/{params.data.dataset}.py")],
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def shadow_blocks(count: int, together: int) -> list[list[int]]:
    """Shadow IDs in the fixed blocks that train as one vectorised computation.

    A block always trains whole (even when only some of its shadows need training), so a shadow's
    bits depend only on its block, never on which neighbours happened to need training.
    """
    return in_blocks(list(range(count)), together)


def train_shadows(shadow_ids: list[int], *, shadows: Shadows, dataset: Dataset, pool: torch.Tensor,
                  params: Params, on_epoch: EpochCallback | None = None
                  ) -> list[tuple[nn.Module, dict[str, torch.Tensor]]]:
    """Train the shadows `shadow_ids` of the set `shadows` (one block: vectorised as one computation
    when there are several and the network allows it) on this process's device; return each on the CPU
    with its outputs on the whole pool and its membership mask. Module-level and keyword-only after the
    block, so an executor can run blocks in other processes (remi.runtime.executors)."""
    device = compute_device()
    seeds = [shadow_seed(shadows.seed, i) for i in shadow_ids]
    members = [shadow_membership(len(pool), shadows.seed, i) for i in shadow_ids]
    build = lambda: build_network(params.model, dataset.input_shape, dataset.num_classes)  # noqa: E731
    models = [seeded_network(build, seed).to(device) for seed in seeds]
    data = [dataset.subset(pool[is_member]) for is_member in members]
    train_each(models, data, params.train, seeds, on_epoch)
    outputs = [{"sample_ids": pool, "logits": predict_logits(model, dataset.inputs[pool]),
                "labels": dataset.labels[pool], "is_member": is_member}
               for model, is_member in zip(models, members, strict=True)]
    return [(model.cpu(), output) for model, output in zip(models, outputs, strict=True)]
