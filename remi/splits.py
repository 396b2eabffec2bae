"""Disjoint sample-ID splits drawn from a seed, the forget set, and erasure-request files."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from remi.errors import ParamsError, UserError

SPLIT_NAMES = ("target_train", "out", "audit_holdout", "test", "shadow_pool")


def make_splits(num_samples: int, sizes: dict[str, int], seed: int) -> dict[str, torch.Tensor]:
    """Cut one seeded permutation of all sample IDs into consecutive, hence disjoint, slices."""
    total = sum(sizes[name] for name in SPLIT_NAMES)
    if total > num_samples:
        raise ParamsError(
            f"splits ask for {total} samples ({', '.join(f'{n}={sizes[n]}' for n in SPLIT_NAMES)}) "
            f"but the dataset has {num_samples}: lower some split sizes."
        )
    order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed))
    splits, start = {}, 0
    for name in SPLIT_NAMES:
        splits[name] = order[start : start + sizes[name]].sort().values
        start += sizes[name]
    return splits


@dataclass(frozen=True)
class ErasureRequest:
    """One file under data/requests/: which samples (by ID, for which data digest) to forget."""

    path: Path
    request_id: str
    dataset: str
    dataset_digest: str
    sample_ids: list[Any]  # raw entries; validation decides whether they are usable IDs


def read_request(path: Path) -> ErasureRequest:
    try:
        body = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"Erasure request {path} is not readable JSON: {error}") from error
    required = {"request_id": str, "dataset": str, "dataset_digest": str, "sample_ids": list}
    problems = [
        f"`{key}` must be a {kind.__name__}"
        for key, kind in required.items()
        if not isinstance(body, dict) or not isinstance(body.get(key), kind)
    ]
    if problems:
        raise UserError(
            f"Erasure request {path} is malformed: {'; '.join(problems)}. Expected "
            '{"request_id": "...", "dataset": "fashion_mnist", "dataset_digest": "<sha256 from '
            'data/splits/target_train.json>", "sample_ids": [12, 345, ...]}.'
        )
    return ErasureRequest(path, body["request_id"], body["dataset"], body["dataset_digest"],
                          body["sample_ids"])


def read_requests(requests_dir: Path) -> list[ErasureRequest]:
    return [read_request(path) for path in sorted(Path(requests_dir).glob("*.json"))]


def select_forget(
    target_train: torch.Tensor,
    labels: torch.Tensor,
    forget_params: dict[str, Any],
    requests: list[ErasureRequest],
) -> torch.Tensor:
    """The forget set: a random fraction, one class, or the union of all erasure requests."""
    mode = forget_params["mode"]
    if mode == "random":
        count = max(1, round(forget_params["fraction"] * len(target_train)))
        generator = torch.Generator().manual_seed(forget_params["seed"])
        picked = torch.randperm(len(target_train), generator=generator)[:count]
        return target_train[picked].sort().values
    if mode == "class":
        label = forget_params["class_label"]
        if label >= int(labels.max()) + 1:
            raise ParamsError(f"forget.class_label = {label}, but the labels are 0..{int(labels.max())}.")
        return target_train[labels[target_train] == label]
    if not requests:
        raise UserError("forget.mode is `requests` but data/requests/ holds no *.json request.")
    ids = {int(i) for request in requests for i in request.sample_ids}
    return torch.tensor(sorted(ids), dtype=torch.long)


def split_record(dataset_name: str, digest: str, split: str, ids: torch.Tensor, **extra: Any) -> dict:
    """What a split file holds: the IDs plus the data digest that gives them meaning."""
    return {"dataset": dataset_name, "dataset_digest": digest, "split": split,
            "count": len(ids), "sample_ids": ids.tolist(), **extra}


def load_split(path: str | Path) -> torch.Tensor:
    """Sample IDs of one split file written by the prepare stage."""
    return torch.tensor(json.loads(Path(path).read_text())["sample_ids"], dtype=torch.long)


def retain_ids(target_train: torch.Tensor, forget: torch.Tensor) -> torch.Tensor:
    return target_train[~torch.isin(target_train, forget)]
