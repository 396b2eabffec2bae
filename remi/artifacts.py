"""Model files on disk: weights plus what is needed to rebuild the network."""

from pathlib import Path
from typing import Any

import torch
from torch import nn

from remi.attacks import AttackModel, ClassGaussians
from remi.datasets import Dataset
from remi.io import atomic_write
from remi.nets import build_network

MODEL_FILE = "model.pt"


def save_model(directory: Path, model: nn.Module, model_params: dict[str, Any], dataset: Dataset) -> None:
    """Weights are saved from the CPU, so a model trained on a GPU loads on any machine."""
    weights = {name: tensor.cpu() for name, tensor in model.state_dict().items()}
    payload = {"model_params": model_params, "input_shape": list(dataset.input_shape),
               "num_classes": dataset.num_classes, "state_dict": weights}
    atomic_write(Path(directory) / MODEL_FILE, lambda tmp: torch.save(payload, tmp))


def load_model(directory: str | Path, device: torch.device | None = None) -> nn.Module:
    """Rebuild a saved classifier (target, shadow or unlearned) in eval mode, on `device` (default CPU)."""
    payload = torch.load(Path(directory) / MODEL_FILE, weights_only=True)
    model = build_network(payload["model_params"], payload["input_shape"], payload["num_classes"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device or "cpu").eval()


def save_attack(directory: Path, attack: AttackModel) -> None:
    num_features = attack.feature_mean.shape[0]
    hidden_units = attack.mlp[0].out_features
    payload = {"num_features": num_features, "hidden_units": hidden_units,
               "state_dict": attack.state_dict()}
    atomic_write(Path(directory) / "attack.pt", lambda tmp: torch.save(payload, tmp))


def load_attack(directory: str | Path, device: torch.device | None = None) -> AttackModel:
    payload = torch.load(Path(directory) / "attack.pt", weights_only=True)
    attack = AttackModel(payload["num_features"], payload["hidden_units"])
    attack.load_state_dict(payload["state_dict"])
    attack.to(device or "cpu").eval()
    for parameter in attack.parameters():
        parameter.requires_grad_(False)
    return attack


def save_class_gaussians(directory: Path, gaussians: ClassGaussians) -> None:
    payload = {"num_classes": len(gaussians.mean), "state_dict": gaussians.state_dict()}
    atomic_write(Path(directory) / "class_gaussians.pt", lambda tmp: torch.save(payload, tmp))


def load_class_gaussians(directory: str | Path, device: torch.device | None = None) -> ClassGaussians:
    payload = torch.load(Path(directory) / "class_gaussians.pt", weights_only=True)
    gaussians = ClassGaussians(payload["num_classes"])
    gaussians.load_state_dict(payload["state_dict"])
    return gaussians.to(device or "cpu").requires_grad_(False).eval()


def load_shadow_outputs(directory: str | Path) -> dict[str, torch.Tensor]:
    """A shadow's logits on its whole pool, with labels and the membership mask."""
    return torch.load(Path(directory) / "outputs.pt", weights_only=True)
