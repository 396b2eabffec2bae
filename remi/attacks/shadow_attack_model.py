"""The shadow-trained membership attack model (the audit's other attacks: audit_attacks.py)."""


import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from remi.attacks.signals import attack_features, logit_scaled_confidence
from remi.networks.training import adam
from remi.params_schema import Attack
from remi.runtime.device import rebalance_threads


class AttackModel(nn.Module):
    """A small MLP over phi(logits, label) returning the member log-odds.

    The feature standardisation is stored with the weights, so the model is self-contained and,
    frozen, stays differentiable w.r.t. the audited model's logits (ReMI needs that).
    """

    feature_mean: torch.Tensor  # buffers, declared for the type checker
    feature_std: torch.Tensor

    def __init__(self, num_features: int, hidden_units: int) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(num_features))
        self.register_buffer("feature_std", torch.ones(num_features))
        self.mlp = nn.Sequential(
            nn.Linear(num_features, hidden_units), nn.ReLU(),
            nn.Linear(hidden_units, hidden_units), nn.ReLU(),
            nn.Linear(hidden_units, 1),
        )

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        features = (attack_features(logits, labels) - self.feature_mean) / self.feature_std
        return self.mlp(features).squeeze(1)


class ClassGaussians(nn.Module):
    """A LiRA-style score from shadow statistics: per class, the Gaussian of the logit-scaled
    confidence on samples a shadow did *not* train on; a sample's score is how many standard
    deviations above its class's non-member mean it lies (higher = more member-like).
    Differentiable w.r.t. the logits, so ReMI can use it as its leakage estimator."""

    mean: torch.Tensor  # buffers, declared for the type checker
    std: torch.Tensor

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_classes))
        self.register_buffer("std", torch.ones(num_classes))

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (logit_scaled_confidence(logits, labels) - self.mean[labels]) / self.std[labels]


def fit_class_gaussians(logits: torch.Tensor, labels: torch.Tensor) -> ClassGaussians:
    """Fit on non-member outputs (logits, labels); a class without samples keeps N(0, 1)."""
    gaussians = ClassGaussians(logits.shape[1])
    signal = logit_scaled_confidence(logits, labels)
    for label in labels.unique():
        values = signal[labels == label]
        gaussians.mean[label] = values.mean()
        gaussians.std[label] = values.std().clamp_min(1e-3) if len(values) > 1 else 1.0
    return gaussians.requires_grad_(False).eval()


def train_attack_model(logits: torch.Tensor, labels: torch.Tensor, is_member: torch.Tensor,
                       attack_params: Attack) -> AttackModel:
    """Fit the attack on shadow outputs with known membership."""
    torch.manual_seed(attack_params.seed)
    features = attack_features(logits, labels)
    model = AttackModel(features.shape[1], attack_params.hidden_units)
    model.feature_mean.copy_(features.mean(0))
    model.feature_std.copy_(features.std(0).clamp_min(1e-6))
    optimizer = adam(model.mlp.parameters(), lr=attack_params.lr)
    target = is_member.float()
    generator = torch.Generator().manual_seed(attack_params.seed)
    for _ in range(attack_params.epochs):
        rebalance_threads()  # a neighbour may have started since the stage chose its threads
        for batch in torch.randperm(len(labels), generator=generator).split(attack_params.batch_size):
            loss = F.binary_cross_entropy_with_logits(model(logits[batch], labels[batch]), target[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


@torch.no_grad()
def attack_scores(attack: AttackModel, logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    return attack(logits, labels).numpy()

