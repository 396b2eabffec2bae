import gzip
import shutil

import pytest

from remi.data.datasets import load_dataset
from remi.errors import DataMissingError, ParamsError
from tests.conftest import RAW_DIR


def test_fashion_mnist_loads_all_70000_real_samples(fashion_mnist):
    assert fashion_mnist.inputs.shape == (70_000, 1, 28, 28)
    assert fashion_mnist.labels.bincount().tolist() == [7000] * 10
    assert len(fashion_mnist.digest) == 64


def test_missing_raw_files_say_how_to_get_them(tmp_path):
    with pytest.raises(DataMissingError, match="make data"):
        load_dataset("fashion_mnist", tmp_path)


def test_corrupt_raw_file_is_named(tmp_path):
    for path in RAW_DIR.glob("*.gz"):
        shutil.copy(path, tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataMissingError, match=r"train-labels-idx1-ubyte\.gz is not a readable gzip"):
        load_dataset("fashion_mnist", tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 8))
    with pytest.raises(DataMissingError, match="truncated"):
        load_dataset("fashion_mnist", tmp_path)
    # Whole and well-formed, but the test images flattened (N, 784) beside the training ones (N, 28, 28).
    shutil.copy(RAW_DIR / "train-labels-idx1-ubyte.gz", tmp_path)
    flat = b"\x00\x00\x08\x02" + (10).to_bytes(4, "big") + (784).to_bytes(4, "big") + bytes(7840)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(flat))
    with pytest.raises(DataMissingError, match=r"t10k-images-idx3-ubyte.gz: shape \(10, 784\); expected \(N, 28, 28\)"):
        load_dataset("fashion_mnist", tmp_path)


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(ParamsError, match="known: \\['cifar10', 'fashion_mnist', 'letter', 'mnist_5k'\\]"):
        load_dataset("cifar-11", RAW_DIR)
