"""The DVC commands the operations run, through the project's interpreter (no activated venv needed)."""

import subprocess
import sys


def dvc(*args: str) -> int:
    return subprocess.call([sys.executable, "-m", "dvc", *args])


def default_remote() -> str | None:
    """The name of DVC's default remote, if one is configured."""
    result = subprocess.run([sys.executable, "-m", "dvc", "remote", "default"], capture_output=True, text=True)
    name = result.stdout.strip()
    return name if result.returncode == 0 and name else None
