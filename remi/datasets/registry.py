"""Name -> loader. A new dataset is one module with a `load(raw_dir) -> Dataset` and one entry here."""

from collections.abc import Callable
from pathlib import Path

from remi import catalog
from remi.catalog import check_registry
from remi.datasets import fashion_mnist
from remi.datasets.base import Dataset
from remi.errors import ParamsError

DATASETS: dict[str, Callable[[Path], Dataset]] = {"fashion_mnist": fashion_mnist.load}
check_registry("dataset", DATASETS, catalog.DATASETS)


def load_dataset(name: str, raw_dir: str | Path) -> Dataset:
    if name not in DATASETS:
        raise ParamsError(f"data.dataset: unknown dataset {name!r}; known: {sorted(DATASETS)}.")
    return DATASETS[name](Path(raw_dir))
