"""Fashion-MNIST from its four standard IDX .gz files (Debian package `dataset-fashion-mnist`)."""

import math
from pathlib import Path

import numpy as np
import torch

from remi.data.datasets.base import Dataset, gunzip, raw_digest, require_files
from remi.errors import DataMissingError

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
# Pixel statistics of the 60k training images, so inputs are roughly zero-mean, unit-variance.
PIXEL_MEAN, PIXEL_STD = 0.2860, 0.3530


def read_idx(path: Path) -> np.ndarray:
    """Parse one gzipped IDX file (the MNIST container format) into an array."""
    raw = gunzip(path)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataMissingError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) < header or len(raw) != header + math.prod(dims):
        raise DataMissingError(f"{path} is truncated: header says {dims}, file is {len(raw)} bytes.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load(raw_dir: Path) -> Dataset:
    """All 70,000 samples: the 60k training images get IDs 0..59999, the 10k test images follow."""
    require_files("fashion_mnist", raw_dir, FILES)
    parts = {name: read_idx(raw_dir / name) for name in FILES}
    for name, array in parts.items():  # checked one by one: concatenating mismatched shapes would fail unnamed
        sample_shape = (28, 28) if "images" in name else ()
        if array.ndim != 1 + len(sample_shape) or array.shape[1:] != sample_shape:
            raise DataMissingError(f"{raw_dir / name}: shape {array.shape}; expected "
                                   f"{'(N, 28, 28)' if sample_shape else '(N,)'}.")
    images = np.concatenate([parts[FILES[0]], parts[FILES[2]]])
    labels = np.concatenate([parts[FILES[1]], parts[FILES[3]]])
    if len(labels) and labels.max() > 9:
        raise DataMissingError(f"{raw_dir}: labels must be in 0..9.")
    if len(images) != len(labels):
        raise DataMissingError(f"{raw_dir}: {len(images)} images but {len(labels)} labels.")
    inputs = torch.from_numpy(images.copy()).float().div_(255).sub_(PIXEL_MEAN).div_(PIXEL_STD)
    return Dataset(
        name="fashion_mnist",
        digest=raw_digest(raw_dir, FILES),
        inputs=inputs.unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        num_classes=10,
    )
