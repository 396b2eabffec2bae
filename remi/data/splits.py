"""Disjoint sample-ID splits drawn from a seed, and the forget set."""

from pathlib import Path
from typing import Any

import torch

from remi.errors import ParamsError, UserError
from remi.params_schema import Forget, Splits
from remi.runtime.files import read_json_output

SPLIT_NAMES = ("target_train", "out", "audit_holdout", "test", "shadow_pool")


def make_splits(num_samples: int, split_params: Splits) -> dict[str, torch.Tensor]:
    """Cut one seeded permutation of all sample IDs into consecutive, hence disjoint, slices."""
    sizes = split_params.model_dump(exclude={"seed"})
    total = sum(sizes[name] for name in SPLIT_NAMES)
    if total > num_samples:
        raise ParamsError(
            f"splits ask for {total} samples ({', '.join(f'{n}={sizes[n]}' for n in SPLIT_NAMES)}) "
            f"but the dataset has {num_samples}: lower some split sizes."
        )
    order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(split_params.seed))
    splits, start = {}, 0
    for name in SPLIT_NAMES:
        splits[name] = order[start : start + sizes[name]].sort().values
        start += sizes[name]
    return splits


def select_forget(
    target_train: torch.Tensor,
    labels: torch.Tensor,
    forget_params: Forget,
    requested_ids: list[int],
) -> torch.Tensor:
    """The forget set: a random fraction, one class, or the union of all erasure requests."""
    mode = forget_params.mode
    if mode == "random":
        count = max(1, round(forget_params.fraction * len(target_train)))
        generator = torch.Generator().manual_seed(forget_params.seed)
        picked = torch.randperm(len(target_train), generator=generator)[:count]
        return target_train[picked].sort().values
    if mode == "class":
        label = forget_params.class_label
        if label >= int(labels.max()) + 1:
            raise ParamsError(f"forget.class_label = {label}, but the labels are 0..{int(labels.max())}.")
        return target_train[labels[target_train] == label]
    if not requested_ids:
        raise UserError("forget.mode is `requests` but data/requests/ holds no *.json request.")
    return torch.tensor(sorted(set(requested_ids)), dtype=torch.long)


def split_record(dataset_name: str, digest: str, split: str, ids: torch.Tensor, **extra: Any) -> dict:
    """What a split file holds: the IDs plus the data digest that gives them meaning."""
    return {"dataset": dataset_name, "dataset_digest": digest, "split": split,
            "count": len(ids), "sample_ids": ids.tolist(), **extra}


def load_split(path: str | Path) -> torch.Tensor:
    """Sample IDs of one split file written by the prepare stage. A missing or damaged one (a merge's conflict
    markers, an edit) is a UserError saying how to restore it; so is a negative ID, which would index from the
    dataset's end and pick other samples with nothing to say so."""
    restore = f"restore it with `dvc checkout {path}` or re-create it with `dvc repro --force prepare`"
    record = read_json_output(Path(path), f"the prepare stage ({restore})")
    ids = record.get("sample_ids") if isinstance(record, dict) else None
    if not isinstance(ids, list) or not all(type(i) is int and i >= 0 for i in ids):  # bool is an int subclass
        raise UserError(f"{path} holds no list of sample IDs (whole numbers from 0): {restore}.")
    return torch.tensor(ids, dtype=torch.long)


def retain_ids(target_train: torch.Tensor, forget: torch.Tensor) -> torch.Tensor:
    return target_train[~torch.isin(target_train, forget)]
