"""MLflow tracking: one child run per stage under the pipeline's parent run, with lineage tags.

The tracking URI comes from MLFLOW_TRACKING_URI, default an sqlite store at the repository root.
The parent run's id comes from REMI_PIPELINE_RUN_ID (set by `remi run`); a stage run
on its own becomes a top-level run. Every stage writes a record under lineage/ (a DVC output), so
that lineage (which run made which artifact) survives DVC cache restores.

A run whose process was killed cannot end itself: every run is tagged with its host, process id
and process start time, and runs still RUNNING whose process is gone are marked KILLED by the next
run on that host (or by `remi reap-runs`).
"""

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from remi.errors import UserError
from remi.pipeline.layout import MLFLOW_STORE, project_root, run_record_path
from remi.runtime.device import compute_device, describe
from remi.runtime.files import file_md5, read_json_output, write_json
from remi.runtime.process_identity import HOST_TAG, is_gone, process_tags

EXPERIMENT = "remi-unlearning"
PARENT_RUN_ENV = "REMI_PIPELINE_RUN_ID"
# MLflow 3's UI opens an experiment on its GenAI view (traces, tokens) unless told this is model
# training: by the experiment's kind tag, and in 3.17 (whose sidebar switch overrides the tag) by the
# page's workflowType, which every link we print carries.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
UI_VIEW = "workflowType=machine_learning"


def quiet_telemetry() -> None:
    for name, value in (("MLFLOW_DISABLE_TELEMETRY", "true"), ("DVC_NO_ANALYTICS", "1"),
                        ("GX_ANALYTICS_ENABLED", "false")):
        os.environ.setdefault(name, value)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / MLFLOW_STORE}"


def experiment_name() -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME", "").strip() or EXPERIMENT


def configured_mlflow() -> Any:
    """The mlflow module, pointed at this project's store and experiment (created with its kind if new)."""
    quiet_telemetry()
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri())
    try:
        experiment = mlflow.set_experiment(experiment_name())
    except MlflowException as error:  # an unknown URI scheme, an invalid name, a refused login
        raise UserError(f"MLflow cannot use experiment {experiment_name()!r} on {tracking_uri()} "
                        f"(MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME): {str(error)[:300]}") from error
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return mlflow


def code_identity(root: Path | None = None) -> dict[str, str]:
    """Git commit, dirty flag and dvc.lock hash: the code and data state a run came from."""
    root = root or project_root()

    def git(*args: str) -> str | None:
        """git's output; None where git cannot answer (no git program, as in a slim image where DVC reads the
        repository without it, or no repository)."""
        try:
            result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        except OSError:
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    lock = root / "dvc.lock"
    # Pipeline outputs committed to git (dvc.lock, metrics, reports) do not make the code dirty.
    changes = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock", ":!metrics",
                  ":!reports", ":!**/.gitignore")
    return {
        "git_commit": git("rev-parse", "HEAD") or "unknown",
        "git_dirty": "unknown" if changes is None else str(bool(changes)).lower(),
        "dvc_lock_md5": file_md5(lock) if lock.exists() else "none",
    }


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections (mappings or params models) as dotted MLflow param names."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, BaseModel):
            value = value.model_dump()
        flat |= flatten(value, f"{name}.") if isinstance(value, dict) else {name: value}
    return flat


def upstream_tags(upstream: list[str]) -> dict[str, str]:
    """`upstream.<output>` = the run id in each input's lineage record (see layout.run_record_path)."""
    tags = {}
    for output in upstream:
        record = read_run_record(output)
        if record is not None:
            tags[f"upstream.{output}"] = record["run_id"]
    return tags


def _pipeline_run(mlflow: Any) -> str | None:
    """The `remi run` parent run a stage nests under (REMI_PIPELINE_RUN_ID, which `remi run` sets), if any."""
    from mlflow.exceptions import MlflowException

    run_id = os.environ.get(PARENT_RUN_ENV, "").strip()
    if not run_id:
        return None
    try:
        mlflow.MlflowClient().get_run(run_id)
    except MlflowException as error:
        raise UserError(f"{PARENT_RUN_ENV}={run_id[:40]!r} names no run in {tracking_uri()}: `remi run` sets it for "
                        "its stages; unset it to run a stage on its own.") from error
    return run_id


@contextmanager
def stage_run(stage: str, role: str, params: dict[str, Any],
              upstream: list[str] | None = None, parent_run_id: str | None = None) -> Iterator[Any]:
    """A child run for one stage (or one shadow / method): params, identity, device and lineage tags.

    Its parent is `parent_run_id` if given (a shadow under its stage run), else the pipeline run.
    """
    mlflow = configured_mlflow()
    reap_orphaned_runs()
    import torch

    # threads: chosen per process by the load (remi/runtime/device.py), so each run says what it had.
    tags = {"stage": stage, "role": role, "device": describe(compute_device()), "threads": str(torch.get_num_threads()),
            **code_identity(), **process_tags(), **upstream_tags(upstream or [])}
    with mlflow.start_run(run_name=f"{stage}:{role}" if role != stage else stage,
                          parent_run_id=parent_run_id or _pipeline_run(mlflow),
                          nested=parent_run_id is not None, tags=tags) as run:
        mlflow.log_params(flatten(params))
        yield run


def experiment_url(base: str, experiment_id: str) -> str:
    """The UI's page of an experiment's runs (not its GenAI overview)."""
    return f"{base}/#/experiments/{experiment_id}?{UI_VIEW}"


def serve_ui(host: str, port: int) -> int:
    """`mlflow server` on this project's store until interrupted; its exit code."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:  # the server would print a traceback, after the link below, and still exit 0
            probe.bind((host, port))
        except OSError as error:
            raise UserError(f"cannot serve the UI on {host}:{port} ({error.strerror}): pass another --port.") from error
    experiment = configured_mlflow().get_experiment_by_name(experiment_name())
    print(f"MLflow UI: {experiment_url(f'http://{host}:{port}', experiment.experiment_id)} "
          f"(store {tracking_uri()}); Ctrl-C stops it.", flush=True)
    command = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port), "--workers", "1",
               "--backend-store-uri", tracking_uri()]
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0


def reap_orphaned_runs() -> list[str]:
    """Mark KILLED the runs of this host still RUNNING although their process is gone; their ids."""
    mlflow = configured_mlflow()
    from mlflow.entities import ViewType

    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(experiment_name())
    running = client.search_runs(
        [experiment.experiment_id], filter_string="attributes.status = 'RUNNING'",
        run_view_type=ViewType.ACTIVE_ONLY, max_results=1000)
    reaped = [run.info.run_id for run in running if HOST_TAG in run.data.tags and is_gone(run.data.tags)]
    for run_id in reaped:
        client.set_terminated(run_id, status="KILLED")
    return reaped


def write_run_record(path: Path, run: Any, **extra: str) -> None:
    """The lineage record of one output: which run (and store) made it, plus e.g. its model URI."""
    record = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
              "tracking_uri": tracking_uri()}
    write_json(path, record | extra)


def read_run_record(output: str) -> dict[str, str] | None:
    """The lineage record of `output` (see write_run_record), None where there is none yet."""
    path = run_record_path(output)
    if not path.exists():
        return None
    record = read_json_output(path, "`remi run`")
    if not (isinstance(record, dict) and isinstance(record.get("run_id"), str)
            and all(isinstance(value, str) for value in record.values())):
        # Read by the stages downstream, by the gate and by `remi purge`: a record cut by a kill or edited by hand
        # would otherwise surface as a KeyError far from its cause.
        raise UserError(f"{path} is not a lineage record (a JSON object of strings with a run_id): "
                        f"{str(record)[:200]}. `remi run` writes it again: DVC sees the changed output and re-runs "
                        "the stage that writes it.")
    return record


def log_data_input(path: Path, context: str) -> None:
    """Log a split file as a run input, its DVC md5 as the digest."""
    mlflow = configured_mlflow()
    from mlflow.data.meta_dataset import MetaDataset

    # Generated at import time by mlflow.data.artifact_dataset_sources, so invisible to a type checker.
    from mlflow.data.sources import LocalArtifactDatasetSource  # type: ignore[attr-defined]

    dataset = MetaDataset(LocalArtifactDatasetSource(str(Path(path).resolve())),  # type: ignore[abstract]
                          name=Path(path).stem, digest=file_md5(path))
    mlflow.log_input(dataset, context=context)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    configured_mlflow().log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def log_curves(curves: list[tuple[int, dict[str, float]]]) -> None:
    """Log buffered per-step values in batches (one sqlite transaction per 1000 points)."""
    mlflow = configured_mlflow()
    from mlflow.entities import Metric

    run_id = mlflow.active_run().info.run_id
    stamp = int(time.time() * 1000)
    points = [Metric(key, float(value), stamp, step)
              for step, values in curves for key, value in values.items()]
    client = mlflow.MlflowClient()
    for start in range(0, len(points), 1000):
        client.log_batch(run_id, metrics=points[start : start + 1000])


def log_artifacts(path: Path, artifact_path: str | None = None) -> None:
    mlflow = configured_mlflow()
    if Path(path).is_dir():
        mlflow.log_artifacts(str(path), artifact_path)
    else:
        mlflow.log_artifact(str(path), artifact_path)


def log_torch_model(model: Any, name: str, input_example: Any) -> str:
    """Log a network as an MLflow model (with the signature of `input_example`); returns its URI."""
    mlflow = configured_mlflow()
    import torch

    # Explicit requirements: inferring them re-imports the model and costs seconds per stage.
    info = mlflow.pytorch.log_model(model, name=name, input_example=input_example,
                                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
    return info.model_uri



def set_tags(tags: dict[str, str]) -> None:
    configured_mlflow().set_tags(tags)
