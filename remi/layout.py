"""Fixed paths of the pipeline's inputs and outputs, mirrored in dvc.yaml."""

from pathlib import Path

REQUESTS_DIR = Path("data/requests")
SPLITS_DIR = Path("data/splits")
MODELS_DIR = Path("models")
TARGET_DIR = MODELS_DIR / "target"
SHADOWS_DIR = MODELS_DIR / "shadows"
ATTACK_DIR = MODELS_DIR / "attack"
UNLEARNED_DIR = MODELS_DIR / "unlearned"
METRICS_DIR = Path("metrics")
REPORTS_DIR = Path("reports")


def split_path(name: str) -> Path:
    """One file per split (and `forget`), so each stage depends only on what it reads."""
    return SPLITS_DIR / f"{name}.json"


def shadow_dir(shadow_id: int) -> Path:
    return SHADOWS_DIR / f"shadow_{shadow_id:03d}"


def unlearned_dir(method: str) -> Path:
    return UNLEARNED_DIR / method


def metrics_path(stage: str) -> Path:
    return METRICS_DIR / f"{stage}.json"
