"""The in-memory dataset every stage works on: all samples as tensors, indexed by sample ID."""

from dataclasses import dataclass

import torch


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

    def subset(self, sample_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[sample_ids], self.labels[sample_ids]
