"""The registered datasets beyond Fashion-MNIST: real MNIST-5k and letter, and CIFAR-10's own format."""

import gzip
import pickle

import numpy as np
import pytest
import torch

from remi.catalog import IMAGE_DATASETS
from remi.data.datasets import load_dataset
from remi.errors import DataMissingError
from tests.conftest import REPO

RAW = REPO / "data" / "raw"


def test_mnist_5k_is_the_5000_real_digits():
    mnist = load_dataset("mnist_5k", RAW / "mnist_5k")
    assert mnist.inputs.shape == (5000, 1, 28, 28)
    assert mnist.labels.bincount().tolist() == [500] * 10
    assert abs(mnist.inputs.mean().item()) < 0.1 and len(mnist.digest) == 64


def test_letter_is_20000_rows_of_16_standardised_features_and_26_classes():
    letter = load_dataset("letter", RAW / "letter")
    assert letter.inputs.shape == (20_000, 16) and letter.num_classes == 26
    assert "letter" not in IMAGE_DATASETS and "mnist_5k" in IMAGE_DATASETS  # what params validation relies on
    assert set(letter.labels.unique().tolist()) == set(range(26))
    assert torch.allclose(letter.inputs.mean(0), torch.zeros(16), atol=1e-4)


def test_corrupt_tabular_and_csv_files_are_named(tmp_path):
    for row in ("1,2,3,Z", ",".join(["--5"] + ["1"] * 15) + ",A", ",".join(["²"] + ["1"] * 15) + ",A"):
        (tmp_path / "letter.dat").write_text(row + "\n")
        with pytest.raises(DataMissingError, match=r"letter\.dat, line 1: expected 16 integers"):
            load_dataset("letter", tmp_path)
    (tmp_path / "mnist_5k.csv.gz").write_bytes(gzip.compress(b"1,2,3\n"))
    with pytest.raises(DataMissingError, match="columns; expected 784 pixels"):
        load_dataset("mnist_5k", tmp_path)
    (tmp_path / "mnist_5k.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(DataMissingError, match="not a readable gzip file"):
        load_dataset("mnist_5k", tmp_path)


def write_cifar_batch(path, images: np.ndarray, labels: list[int]) -> None:
    """A batch file as CIFAR-10's Python version ships it: a pickled dict with byte-string keys."""
    batch = {b"batch_label": b"training batch", b"labels": labels,
             b"data": images.reshape(len(images), -1), b"filenames": [b"x.png"] * len(labels)}
    path.write_bytes(pickle.dumps(batch, protocol=2))


@pytest.fixture
def small_cifar(tmp_path):
    rng = np.random.default_rng(0)
    images = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images[name] = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
        write_cifar_batch(tmp_path / name, images[name], [i % 10 for i in range(4)])
    return tmp_path, images


def test_cifar10_loader_reads_cifars_own_format_in_order(small_cifar):
    raw_dir, images = small_cifar
    cifar = load_dataset("cifar10", raw_dir)
    assert cifar.inputs.shape == (24, 3, 32, 32) and cifar.num_classes == 10
    assert cifar.labels.tolist() == [0, 1, 2, 3] * 6
    # ID 20 is the first test image; undo the per-channel normalisation to get its pixels back.
    mean, std = torch.tensor([0.4914, 0.4822, 0.4465]), torch.tensor([0.2470, 0.2435, 0.2616])
    pixels = (cifar.inputs[20] * std[:, None, None] + mean[:, None, None]) * 255
    assert torch.allclose(pixels, torch.from_numpy(images["test_batch"][0]).float(), atol=1e-3)


def test_cifar10_loader_rejects_bad_and_code_running_files(small_cifar):
    raw_dir, _ = small_cifar
    (raw_dir / "data_batch_3").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DataMissingError, match=r"data_batch_3: data has shape \(2, 10\)"):
        load_dataset("cifar10", raw_dir)

    class RunsCode:
        def __reduce__(self):
            return (print, ("pwned",))

    (raw_dir / "data_batch_3").write_bytes(pickle.dumps(RunsCode()))
    with pytest.raises(DataMissingError, match=r"builtins\.print is not allowed"):
        load_dataset("cifar10", raw_dir)
    (raw_dir / "test_batch").unlink()
    with pytest.raises(DataMissingError, match=r"get_data\.sh cifar10"):
        load_dataset("cifar10", raw_dir)


class _HugeArray:
    """Pickles as numpy's array placeholder with a 28.6 GiB shape: a few hundred bytes on disk."""

    def __reduce__(self):
        return (np._core.multiarray._reconstruct, (np.ndarray, (30_000, 1024, 1000), b"b"))


@pytest.mark.parametrize(("content", "message"), [
    (lambda: pickle.dumps({b"data": _HugeArray(), b"labels": [0]}, protocol=2), "numpy writes"),
    (lambda: pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [2**70]}, protocol=2),
     "not a CIFAR-10 batch"),
    (lambda: pickle.dumps({b"data": np.zeros((1, 3072), np.uint8)}, protocol=2)[:-5], "not a CIFAR-10 batch"),
    (lambda: b"\x80\x02]q\x00(" + b"h\x05" * 20, "not a CIFAR-10 batch"),  # memo reference never stored
])
def test_cifar10_batches_that_abuse_resources_or_break_the_format_are_refused(small_cifar, content, message):
    raw_dir, _ = small_cifar
    data = content()
    assert len(data) < 10_000
    (raw_dir / "data_batch_2").write_bytes(data)
    with pytest.raises(DataMissingError, match=message):
        load_dataset("cifar10", raw_dir)
