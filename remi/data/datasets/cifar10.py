"""CIFAR-10 from its own Python-pickle batches (`cifar-10-batches-py`: data_batch_1..5, test_batch).

The batches are pickles; they are read with an unpickler that only rebuilds plain containers and
numpy arrays, so a tampered file cannot run code.
"""

import io
import pickle
from pathlib import Path

import numpy as np
import torch

from remi.data.datasets.base import Dataset, raw_digest, require_files
from remi.errors import DataMissingError

FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
IMAGE_VALUES = 3 * 32 * 32
CHANNEL_MEAN = (0.4914, 0.4822, 0.4465)  # training-set statistics
CHANNEL_STD = (0.2470, 0.2435, 0.2616)
_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
_ALLOWED = _RECONSTRUCT | {("numpy", "ndarray"), ("numpy", "dtype"),
                           ("_codecs", "encode")}  # how protocol-2 pickles written by Python 3 store bytes
# Any failure while unpickling an untrusted file means "not a CIFAR batch", whichever layer raised it.
_UNREADABLE = (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError, IndexError,
               OverflowError, MemoryError, UnicodeError, RecursionError)


def _empty_array_only(reconstruct):
    """numpy pickles an array as an empty array plus its bytes (__setstate__ checks they match);
    `_reconstruct` with a non-empty shape would allocate that shape, bytes or not."""
    def guarded(subtype, shape, dtype):
        if tuple(shape) != (0,):
            raise pickle.UnpicklingError(f"array placeholder of shape {shape!r}; numpy writes (0,)")
        return reconstruct(subtype, shape, dtype)

    return guarded


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        found = super().find_class(module, name)
        return _empty_array_only(found) if (module, name) in _RECONSTRUCT else found


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) of one batch file."""
    try:
        batch = _ArraysOnly(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        data, labels = np.asarray(batch[b"data"], dtype=np.uint8), np.asarray(batch[b"labels"], dtype=np.int64)
    except _UNREADABLE as error:
        raise DataMissingError(f"{path} is not a CIFAR-10 batch ({error}).") from error
    if data.ndim != 2 or data.shape[1] != IMAGE_VALUES or len(labels) != len(data):
        raise DataMissingError(f"{path}: data has shape {data.shape} with {len(labels)} labels; "
                               f"expected (N, {IMAGE_VALUES}) and N labels.")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataMissingError(f"{path}: labels must be in 0..9.")
    return data.reshape(-1, 3, 32, 32), labels


def load(raw_dir: Path) -> Dataset:
    """The 50,000 training images get IDs 0..49999, the 10,000 test images follow."""
    require_files("cifar10", raw_dir, FILES)
    batches = [read_batch(raw_dir / file) for file in FILES]
    images = torch.from_numpy(np.concatenate([b[0] for b in batches])).float().div_(255)
    mean, std = torch.tensor(CHANNEL_MEAN)[:, None, None], torch.tensor(CHANNEL_STD)[:, None, None]
    return Dataset(name="cifar10", digest=raw_digest(raw_dir, FILES), inputs=(images - mean) / std,
                   labels=torch.from_numpy(np.concatenate([b[1] for b in batches])), num_classes=10)
