"""The attack model's and the class Gaussians' files (models/attack/), byte-stable like every model file."""

from pathlib import Path
from typing import Any

import torch

from remi.attacks.shadow_attack_model import AttackModel, ClassGaussians
from remi.networks.checkpoints import load_checked, torch_bytes
from remi.runtime.files import write_bytes


def save_attack(directory: Path, attack: AttackModel) -> None:
    num_features = attack.feature_mean.shape[0]
    hidden_units = attack.mlp[0].out_features
    payload = {"num_features": num_features, "hidden_units": hidden_units,
               "state_dict": attack.state_dict()}
    write_bytes(Path(directory) / "attack.pt", torch_bytes(payload))


def load_attack(directory: str | Path, device: torch.device | None = None) -> AttackModel:
    def rebuild(payload: dict[str, Any]) -> AttackModel:
        attack = AttackModel(payload["num_features"], payload["hidden_units"])
        attack.load_state_dict(payload["state_dict"])
        return attack

    attack = load_checked(Path(directory) / "attack.pt", rebuild)
    attack.to(device or "cpu").eval()
    for parameter in attack.parameters():
        parameter.requires_grad_(False)
    return attack


def save_class_gaussians(directory: Path, gaussians: ClassGaussians) -> None:
    payload = {"num_classes": len(gaussians.mean), "state_dict": gaussians.state_dict()}
    write_bytes(Path(directory) / "class_gaussians.pt", torch_bytes(payload))


def load_class_gaussians(directory: str | Path, device: torch.device | None = None) -> ClassGaussians:
    def rebuild(payload: dict[str, Any]) -> ClassGaussians:
        gaussians = ClassGaussians(payload["num_classes"])
        gaussians.load_state_dict(payload["state_dict"])
        return gaussians

    gaussians = load_checked(Path(directory) / "class_gaussians.pt", rebuild)
    return gaussians.to(device or "cpu").requires_grad_(False).eval()
