"""MLflow tracking: one child run per stage under the pipeline's parent run, with lineage tags.

The tracking URI comes from MLFLOW_TRACKING_URI, default an sqlite store at the repository root.
The parent run's id comes from REMI_PIPELINE_RUN_ID (set by tools/run_pipeline.py); a stage run
on its own becomes a top-level run. Every output directory gets a `mlflow_run.json`, so that
lineage (which run made which artifact) survives DVC cache restores.
"""

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from remi.device import compute_device, describe
from remi.io import file_md5, read_json, write_json

EXPERIMENT = "remi-unlearning"
PARENT_RUN_ENV = "REMI_PIPELINE_RUN_ID"
RUN_RECORD = "mlflow_run.json"
REPO_ROOT = Path(__file__).resolve().parent.parent


def quiet_telemetry() -> None:
    for name, value in (("MLFLOW_DISABLE_TELEMETRY", "true"), ("DVC_NO_ANALYTICS", "1"),
                        ("GX_ANALYTICS_ENABLED", "false")):
        os.environ.setdefault(name, value)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{REPO_ROOT / 'mlflow.db'}"


def _mlflow():
    quiet_telemetry()
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT))
    return mlflow


def code_identity(root: Path = REPO_ROOT) -> dict[str, str]:
    """Git commit, dirty flag and dvc.lock hash: the code and data state a run came from."""
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""

    lock = root / "dvc.lock"
    return {
        "git_commit": git("rev-parse", "HEAD") or "unknown",
        # Pipeline outputs committed to git (dvc.lock, metrics, reports) do not make the code dirty.
        "git_dirty": str(bool(git("status", "--porcelain", "--untracked-files=no", "--", ".",
                                  ":!dvc.lock", ":!metrics", ":!reports", ":!**/.gitignore"))).lower(),
        "dvc_lock_md5": file_md5(lock) if lock.exists() else "none",
    }


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        flat |= flatten(value, f"{name}.") if isinstance(value, dict) else {name: value}
    return flat


def upstream_tags(upstream: dict[str, Path]) -> dict[str, str]:
    """`upstream.<name>` = run id recorded in each input directory's mlflow_run.json."""
    tags = {}
    for name, directory in upstream.items():
        record = Path(directory) / RUN_RECORD
        if record.exists():
            tags[f"upstream.{name}"] = read_json(record)["run_id"]
    return tags


@contextmanager
def stage_run(stage: str, role: str, params: dict[str, Any],
              upstream: dict[str, Path] | None = None, parent_run_id: str | None = None) -> Iterator[Any]:
    """A child run for one stage (or one shadow / method): params, identity, device and lineage tags.

    Its parent is `parent_run_id` if given (a shadow under its stage run), else the pipeline run.
    """
    mlflow = _mlflow()
    tags = {"stage": stage, "role": role, "device": describe(compute_device()), **code_identity(),
            **upstream_tags(upstream or {})}
    with mlflow.start_run(run_name=f"{stage}:{role}" if role != stage else stage,
                          parent_run_id=parent_run_id or os.environ.get(PARENT_RUN_ENV),
                          nested=parent_run_id is not None, tags=tags) as run:
        mlflow.log_params(flatten(params))
        yield run


def write_run_record(directory: Path, run: Any, model_uri: str | None = None) -> None:
    record = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
              "tracking_uri": tracking_uri()}
    write_json(Path(directory) / RUN_RECORD, record | ({"model_uri": model_uri} if model_uri else {}))


def log_data_input(path: Path, context: str) -> None:
    """Log a split file as a run input, its DVC md5 as the digest."""
    mlflow = _mlflow()
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource

    dataset = MetaDataset(LocalArtifactDatasetSource(str(Path(path).resolve())),
                          name=Path(path).stem, digest=file_md5(path))
    mlflow.log_input(dataset, context=context)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    _mlflow().log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def log_curves(curves: list[tuple[int, dict[str, float]]]) -> None:
    """Log buffered per-step values in batches (one sqlite transaction per 1000 points)."""
    mlflow = _mlflow()
    from mlflow.entities import Metric

    run_id = mlflow.active_run().info.run_id
    stamp = int(time.time() * 1000)
    points = [Metric(key, float(value), stamp, step)
              for step, values in curves for key, value in values.items()]
    client = mlflow.MlflowClient()
    for start in range(0, len(points), 1000):
        client.log_batch(run_id, metrics=points[start : start + 1000])


def log_artifacts(path: Path, artifact_path: str | None = None) -> None:
    mlflow = _mlflow()
    if Path(path).is_dir():
        mlflow.log_artifacts(str(path), artifact_path)
    else:
        mlflow.log_artifact(str(path), artifact_path)


def log_torch_model(model: Any, name: str, input_example: Any) -> str:
    """Log a network as an MLflow model (with the signature of `input_example`); returns its URI."""
    mlflow = _mlflow()
    import torch

    # Explicit requirements: inferring them re-imports the model and costs seconds per stage.
    info = mlflow.pytorch.log_model(model, name=name, input_example=input_example,
                                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
    return info.model_uri



def set_tags(tags: dict[str, str]) -> None:
    _mlflow().set_tags(tags)
