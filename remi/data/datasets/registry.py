"""Name -> loader. A new dataset is one module with a `load(raw_dir) -> Dataset` and one entry here."""

from collections.abc import Callable
from pathlib import Path

from remi import catalog
from remi.catalog import check_registry
from remi.data.datasets import cifar10, fashion_mnist, letter, mnist_5k
from remi.data.datasets.base import Dataset
from remi.errors import ParamsError

DATASETS: dict[str, Callable[[Path], Dataset]] = {
    "fashion_mnist": fashion_mnist.load, "mnist_5k": mnist_5k.load, "letter": letter.load, "cifar10": cifar10.load}
check_registry("dataset", DATASETS, catalog.DATASETS)


def load_dataset(name: str, raw_dir: str | Path) -> Dataset:
    if name not in DATASETS:
        raise ParamsError(f"data.dataset: unknown dataset {name!r}; known: {sorted(DATASETS)}.")
    return DATASETS[name](Path(raw_dir))
