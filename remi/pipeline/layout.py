"""Fixed paths of the pipeline's inputs and outputs, mirrored in dvc.yaml, relative to the project root
(the directory holding dvc.yaml, where DVC runs every stage)."""

from dataclasses import dataclass
from pathlib import Path

REQUESTS_DIR = Path("data/requests")
SPLITS_DIR = Path("data/splits")
MODELS_DIR = Path("models")
TARGET_DIR = MODELS_DIR / "target"
# Written by `remi purge --target` (git-tracked): the original target is gone and must not be retrained.
TARGET_PURGE_RECORD = MODELS_DIR / "target.purged.json"
SHADOWS_DIR = MODELS_DIR / "shadows"
ONLINE_SHADOWS_DIR = MODELS_DIR / "online_shadows"
ATTACK_DIR = MODELS_DIR / "attack"
UNLEARNED_DIR = MODELS_DIR / "unlearned"
METRICS_DIR = Path("metrics")
UNLEARN_METRICS_DIR = METRICS_DIR / "unlearn"
REPORTS_DIR = Path("reports")
AUDIT_REPORT_DIR = REPORTS_DIR / "audit"  # replaced as one set, so a kill never mixes two runs' files
MEMBERSHIP_SCORES = REPORTS_DIR / "membership_scores.csv"  # the audit's per-example scores (`remi exposure` reads it)
# Which MLflow run made each output. Kept beside, not inside, the outputs: a run id changes on every
# run, and inside a model directory it would change the directory's hash and re-run everything after it.
LINEAGE_DIR = Path("lineage")
OUTPUT_ROOTS = (SPLITS_DIR, MODELS_DIR, METRICS_DIR, REPORTS_DIR, LINEAGE_DIR)  # where stages write
MLFLOW_STORE = Path("mlflow.db")  # the default local tracking store


def project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above `start` (default: the working directory) holding dvc.yaml."""
    here = (start or Path.cwd()).resolve()
    return next((d for d in (here, *here.parents) if (d / "dvc.yaml").is_file()), here)


def split_path(name: str) -> Path:
    """One file per split (and `forget`), so each stage depends only on what it reads."""
    return SPLITS_DIR / f"{name}.json"


@dataclass(frozen=True)
class ShadowSet:
    """One set of shadow models: its params section, DVC stage, the splits its pool joins, its directory."""

    section: str
    stage: str
    pool_splits: tuple[str, ...]
    directory: Path


# Offline shadows never see an audited sample; online shadows see each one half of the time (online LiRA).
SHADOW_SETS = {s.section: s for s in (
    ShadowSet("shadows", "train_shadows", ("shadow_pool",), SHADOWS_DIR),
    ShadowSet("online_shadows", "train_online_shadows", ("target_train", "out", "audit_holdout"), ONLINE_SHADOWS_DIR),
)}


def shadow_dir(shadow_id: int, directory: Path = SHADOWS_DIR) -> Path:
    return directory / f"shadow_{shadow_id:03d}"


def unlearned_dir(method: str) -> Path:
    return UNLEARNED_DIR / method


def metrics_path(stage: str) -> Path:
    return METRICS_DIR / f"{stage}.json"


def unlearn_metrics_path(method: str) -> Path:
    """Seconds and threads of one method's run; the audit depends on the whole directory."""
    return UNLEARN_METRICS_DIR / f"{method}.json"


def run_record_path(output: str) -> Path:
    """lineage/<output>.json: the MLflow run that produced `output` (e.g. target, unlearn/remi)."""
    return LINEAGE_DIR / f"{output}.json"
