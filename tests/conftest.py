import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RAW_DIR = REPO / "data" / "raw" / "fashion_mnist"

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def fashion_mnist():
    from remi.datasets import load_dataset

    return load_dataset("fashion_mnist", RAW_DIR)


@pytest.fixture
def params():
    from remi.params import load_params

    return load_params(REPO / "params.yaml")
