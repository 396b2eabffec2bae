"""Datasets behind one registry: `load_dataset(name, raw_dir)`."""

from remi.data.datasets.base import Dataset
from remi.data.datasets.registry import DATASETS, load_dataset

__all__ = ["DATASETS", "Dataset", "load_dataset"]
