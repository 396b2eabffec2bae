import os
import shutil
import subprocess
import sys
from collections.abc import Callable
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


def pipeline_copy(work: Path, profile: str) -> Callable[..., subprocess.CompletedProcess]:
    """A git+DVC copy of the repository in `work` (tracked files and raw data) with `profile` applied
    and its own MLflow store; returns a runner of commands in it."""
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                             cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        if (REPO / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, work / name)
    for raw in (REPO / "data" / "raw").iterdir():
        if raw.is_dir():
            shutil.copytree(raw, work / "data" / "raw" / raw.name)
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
                        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)

    assert run(sys.executable, "tools/use_profile.py", profile).returncode == 0
    for cmd in (("git", "init", "-q"), ("git", "add", "-A"),
                ("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy")):
        assert run(*cmd).returncode == 0
    return run
