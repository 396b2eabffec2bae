"""Fashion-MNIST from its four standard IDX .gz files (Debian package `dataset-fashion-mnist`)."""

import gzip
import hashlib
from pathlib import Path

import numpy as np
import torch

from remi.datasets.base import Dataset
from remi.errors import DataMissingError

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
# Pixel statistics of the 60k training images, so inputs are roughly zero-mean, unit-variance.
PIXEL_MEAN, PIXEL_STD = 0.2860, 0.3530
HOW_TO_GET = (
    "Run `make data` (copies them from the Debian package dataset-fashion-mnist, installing it "
    "with apt-get if possible, else downloads them with torchvision), or put the four files "
    f"{', '.join(FILES)} into {{raw_dir}}."
)


def read_idx(path: Path) -> np.ndarray:
    """Parse one gzipped IDX file (the MNIST container format) into an array."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as error:
        raise DataMissingError(f"{path} is not a readable gzip file ({error}).") from error
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataMissingError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) != header + int(np.prod(dims)):
        raise DataMissingError(f"{path} is truncated: header says {dims}, file is {len(raw)} bytes.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def raw_digest(raw_dir: Path) -> str:
    """SHA-256 over the four raw files in a fixed order: the dataset's own hash."""
    digest = hashlib.sha256()
    for name in FILES:
        digest.update(name.encode())
        digest.update(hashlib.sha256((raw_dir / name).read_bytes()).digest())
    return digest.hexdigest()


def load(raw_dir: Path) -> Dataset:
    """All 70,000 samples: the 60k training images get IDs 0..59999, the 10k test images follow."""
    missing = [name for name in FILES if not (raw_dir / name).is_file()]
    if missing:
        raise DataMissingError(
            f"Fashion-MNIST raw files missing from {raw_dir}: {', '.join(missing)}. "
            + HOW_TO_GET.format(raw_dir=raw_dir)
        )
    images = np.concatenate([read_idx(raw_dir / FILES[0]), read_idx(raw_dir / FILES[2])])
    labels = np.concatenate([read_idx(raw_dir / FILES[1]), read_idx(raw_dir / FILES[3])])
    if len(images) != len(labels):
        raise DataMissingError(f"{raw_dir}: {len(images)} images but {len(labels)} labels.")
    inputs = torch.from_numpy(images.copy()).float().div_(255).sub_(PIXEL_MEAN).div_(PIXEL_STD)
    return Dataset(
        name="fashion_mnist",
        digest=raw_digest(raw_dir),
        inputs=inputs.unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        num_classes=10,
    )
