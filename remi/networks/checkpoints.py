"""Model files on disk: weights plus what is needed to rebuild the network.

Files are byte-stable: the same tensors give the same bytes (torch.save to a path names the zip's
inner folder after the file, and our temp files have random names), so a re-run that reproduces a
model leaves its DVC hash, and everything downstream, untouched. Loading is strict: weights only,
and any unreadable or mismatched file is a readable error that says how to get a good one back.
"""

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from remi.data.datasets import Dataset
from remi.errors import UserError
from remi.networks import MODEL_FILE
from remi.networks.architectures import build_network
from remi.params_schema import Model
from remi.runtime.files import write_bytes

Loaded = TypeVar("Loaded")


class ArtifactError(UserError):
    """A model file is missing, corrupt or does not match what the pipeline expects."""


class TrainingDiverged(UserError):
    """Training produced NaN or infinite weights; such a model is never written."""


def torch_bytes(payload: Any) -> bytes:
    """torch.save into memory: the archive's inner name is fixed, so equal tensors give equal bytes."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def require_finite(state: dict[str, torch.Tensor], what: str) -> None:
    bad = [name for name, tensor in state.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise TrainingDiverged(f"{what}: training diverged ({len(bad)} tensors hold NaN or infinite values, "
                               f"e.g. {bad[0]}); lower the learning rate or the loss weights in params.yaml.")


def load_checked(path: Path, rebuild: Callable[[dict[str, Any]], Loaded]) -> Loaded:
    """torch.load (weights only) and `rebuild`, with every failure turned into an ArtifactError."""
    if not path.is_file():
        raise ArtifactError(f"{path} is missing: run `dvc repro` (or `dvc checkout {path.parent}`).")
    try:
        return rebuild(torch.load(path, weights_only=True))
    except Exception as error:  # a corrupt or foreign file can fail in any of torch's layers
        raise ArtifactError(f"{path} is not a usable model file ({type(error).__name__}: {str(error)[:200]}); "
                            f"restore it with `dvc checkout {path.parent}` or re-create it with "
                            "`dvc repro --force <stage that writes it>`.") from error


def save_model(directory: Path, model: nn.Module, model_params: Model, dataset: Dataset) -> None:
    """Weights are saved from the CPU, so a model trained on a GPU loads on any machine."""
    weights = {name: tensor.cpu() for name, tensor in model.state_dict().items()}
    require_finite(weights, f"the model for {directory}")
    payload = {"model_params": model_params.model_dump(), "input_shape": list(dataset.input_shape),
               "num_classes": dataset.num_classes, "state_dict": weights}
    write_bytes(Path(directory) / MODEL_FILE, torch_bytes(payload))


def load_model(directory: str | Path, device: torch.device | None = None) -> nn.Module:
    """Rebuild a saved classifier (target, shadow or unlearned) in eval mode, on `device` (default CPU)."""
    def rebuild(payload: dict[str, Any]) -> nn.Module:
        model_params = Model.model_validate(payload["model_params"])
        model = build_network(model_params, payload["input_shape"], payload["num_classes"])
        model.load_state_dict(payload["state_dict"])
        return model

    return load_checked(Path(directory) / MODEL_FILE, rebuild).to(device or "cpu").eval()


def load_shadow_outputs(directory: str | Path) -> dict[str, torch.Tensor]:
    """A shadow's logits on its whole pool, with labels and the membership mask."""
    def check(payload: Any) -> dict[str, torch.Tensor]:
        if not isinstance(payload, dict) or not {"logits", "labels", "is_member"} <= set(payload):
            raise ValueError("expected logits, labels and is_member")
        return payload

    return load_checked(Path(directory) / "outputs.pt", check)


def positions_in_pool(outputs: list[dict[str, torch.Tensor]], ids: torch.Tensor, what: str) -> torch.Tensor:
    """Where the samples `ids` sit in the online shadows' saved outputs, which all cover one pool in one
    order; `what` names the samples in the error raised when the shadows do not fit that."""
    pool = outputs[0]["sample_ids"]
    if any(not torch.equal(o["sample_ids"], pool) for o in outputs):
        raise ArtifactError("the online shadows were trained on different pools: retrain them with "
                            "`dvc repro --force train_online_shadows`")
    position = torch.full((int(pool.max()) + 1,), -1, dtype=torch.long)
    position[pool] = torch.arange(len(pool))
    at = position[ids.clamp(max=len(position) - 1)]
    if (at < 0).any() or (ids >= len(position)).any():
        raise ArtifactError(f"some {what} samples are not in the online shadows' pool: retrain them with "
                            "`dvc repro --force train_online_shadows`")
    return at
