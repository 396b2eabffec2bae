"""The in-memory dataset every stage works on, and what every loader shares."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from remi.errors import DataMissingError

HOW_TO_GET = "Run `bash scripts/get_data.sh {name}` (or `make data`), or put {files} into {raw_dir}."


@dataclass(frozen=True)
class Dataset:
    """All samples of one source dataset.

    A sample's ID is its row index here; `digest` names the exact raw files, so an ID is only
    meaningful together with the digest (a request for another version of the data is rejected).
    """

    name: str
    digest: str
    inputs: torch.Tensor  # float32, normalised, shape (N, ...)
    labels: torch.Tensor  # int64, shape (N,)
    num_classes: int

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.inputs.shape[1:])

    def subset(self, sample_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[sample_ids], self.labels[sample_ids]


def require_files(name: str, raw_dir: Path, files: tuple[str, ...]) -> None:
    """Fail with the fix when any raw file is absent."""
    missing = [file for file in files if not (raw_dir / file).is_file()]
    if missing:
        raise DataMissingError(f"{name} raw files missing from {raw_dir}: {', '.join(missing)}. "
                               + HOW_TO_GET.format(name=name, files=", ".join(files), raw_dir=raw_dir))


def raw_digest(raw_dir: Path, files: tuple[str, ...]) -> str:
    """SHA-256 over the raw files in a fixed order: the dataset's own hash."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.encode())
        digest.update(hashlib.sha256((raw_dir / file).read_bytes()).digest())
    return digest.hexdigest()
