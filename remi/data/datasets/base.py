"""The in-memory dataset every stage works on, and what every loader shares."""

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from remi.errors import DataMissingError

HOW_TO_GET = "Run `bash scripts/get_data.sh {name}` (or `make data`), or put {files} into {raw_dir}."
# Per raw file, after decompression: the largest real one (CIFAR-10's images) is ~150 MB. A bound
# keeps a gzip bomb or a lying header from taking the machine's memory.
MAX_RAW_BYTES = 256 * 1024 * 1024


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
    """Fail with the fix when any raw file is absent, or is not a regular file (a FIFO would hang
    the read, a device never end it), or is larger than any real one."""
    missing = [file for file in files if not (raw_dir / file).is_file()]
    if missing:
        raise DataMissingError(f"{name} raw files missing (or not regular files) in {raw_dir}: "
                               f"{', '.join(missing)}. "
                               + HOW_TO_GET.format(name=name, files=", ".join(files), raw_dir=raw_dir))
    too_large = [file for file in files if (raw_dir / file).stat().st_size > MAX_RAW_BYTES]
    if too_large:
        raise DataMissingError(f"{name} raw files in {raw_dir} larger than {MAX_RAW_BYTES:,} bytes: "
                               f"{', '.join(too_large)}; these are not the dataset's files.")


def gunzip(path: Path) -> bytes:
    """The decompressed bytes of a gzip file, refusing to expand past MAX_RAW_BYTES."""
    try:
        with gzip.open(path, "rb") as handle:
            data = handle.read(MAX_RAW_BYTES + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise DataMissingError(f"{path} is not a readable gzip file ({error}).") from error
    if len(data) > MAX_RAW_BYTES:
        raise DataMissingError(f"{path} expands past {MAX_RAW_BYTES:,} bytes; it is not the dataset's file.")
    return data


def raw_digest(raw_dir: Path, files: tuple[str, ...]) -> str:
    """SHA-256 over the raw files in a fixed order: the dataset's own hash."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.encode())
        digest.update(hashlib.sha256((raw_dir / file).read_bytes()).digest())
    return digest.hexdigest()
