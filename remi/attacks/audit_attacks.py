"""The audit's membership attacks: each turns the audited model's logits into per-example scores
(higher = "member") for every scored part (forget, retain sample, audit_holdout).

Reference models are the shadows: none of them trained on any audited sample, so offline LiRA and
offline RMIA use them as "out" models for every sample.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from remi.attacks.shadow_attack_model import AttackModel
from remi.attacks.signals import logit_scaled_confidence
from remi.catalog import AUDIT_ATTACKS, check_registry

SCORED_PARTS = ("forget", "retain", "audit_holdout")
MIA_EFFICACY_THRESHOLD = 0.5  # SalUn: a forget sample counts as forgotten when P(member) < 0.5


@dataclass
class AttackInputs:
    """What attacks may use besides the audited model's own outputs.

    `labels[part]` for every part; `reference_logits[part]` = (K, n, C) logits of K reference models
    that never saw the part's samples. Parts beyond SCORED_PARTS: `population` (non-members for
    RMIA's pairwise comparison), `fit_members` / `fit_nonmembers` (retain and test samples that
    SalUn's MIA-efficacy classifier is fitted on; disjoint from the scored parts).
    """

    labels: dict[str, torch.Tensor]
    reference_logits: dict[str, torch.Tensor]
    attack_model: AttackModel
    rmia_offline_a: float


Logits = dict[str, torch.Tensor]  # part -> the audited model's logits
Scores = dict[str, np.ndarray]  # scored part -> per-example scores
Attack = Callable[[Logits, AttackInputs], Scores]


def shadow_attack(logits: Logits, inputs: AttackInputs) -> Scores:
    """The shadow-trained attack model's member log-odds."""
    with torch.no_grad():
        return {p: inputs.attack_model(logits[p], inputs.labels[p]).numpy() for p in SCORED_PARTS}


def loss_score(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """-loss, in float64: in float32 every loss below ~1e-7 rounds to 0, and those ties (most of a
    memorised training set) would hide the ranking among confident members."""
    return -F.cross_entropy(logits.double(), labels, reduction="none").numpy()


def loss_attack(logits: Logits, inputs: AttackInputs) -> Scores:
    """Loss threshold (Yeom et al. 2018)."""
    return {p: loss_score(logits[p], inputs.labels[p]) for p in SCORED_PARTS}


def _confidence_features(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """True-class probability, entropy and modified entropy (Song & Mittal 2021)."""
    probs = logits.double().softmax(1).clamp(1e-30, 1 - 1e-16)
    true_prob = probs.gather(1, labels[:, None]).squeeze(1)
    entropy = -(probs * probs.log()).sum(1)
    others = probs.scatter(1, labels[:, None], 0.0)
    modified = -(1 - true_prob) * true_prob.log() - (others * (1 - others).log()).sum(1)
    return torch.stack([true_prob, entropy, modified], 1).numpy()


def mia_efficacy(logits: Logits, inputs: AttackInputs) -> Scores:
    """SalUn's MIA-efficacy classifier: fitted on the audited model's own retain-vs-test outputs."""
    members = _confidence_features(logits["fit_members"], inputs.labels["fit_members"])
    nonmembers = _confidence_features(logits["fit_nonmembers"], inputs.labels["fit_nonmembers"])
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    classifier.fit(np.r_[members, nonmembers], np.r_[np.ones(len(members)), np.zeros(len(nonmembers))])
    return {p: classifier.predict_proba(_confidence_features(logits[p], inputs.labels[p]))[:, 1]
            for p in SCORED_PARTS}


def _reference_confidence(inputs: AttackInputs, part: str) -> torch.Tensor:
    reference = inputs.reference_logits[part].double()
    labels = inputs.labels[part].expand(reference.shape[0], -1)
    return logit_scaled_confidence(reference.flatten(0, 1), labels.flatten()).view(reference.shape[:2])


def lira(logits: Logits, inputs: AttackInputs) -> Scores:
    """Offline LiRA (Carlini et al. 2022): how far above the reference models' Gaussian for this
    very sample the audited model's logit-scaled confidence lies (per-example mean and variance)."""
    scores = {}
    for part in SCORED_PARTS:
        reference = _reference_confidence(inputs, part)
        confidence = logit_scaled_confidence(logits[part].double(), inputs.labels[part])
        scores[part] = ((confidence - reference.mean(0)) / (reference.std(0) + 1e-6)).numpy()
    return scores


def lira_fixed_variance(logits: Logits, inputs: AttackInputs) -> Scores:
    """Offline LiRA with one variance for all samples: steadier with few reference models."""
    references = {p: _reference_confidence(inputs, p) for p in SCORED_PARTS}
    spread = torch.cat([(r - r.mean(0)).flatten() for r in references.values()]).std() + 1e-6
    return {p: ((logit_scaled_confidence(logits[p].double(), inputs.labels[p]) - r.mean(0)) / spread).numpy()
            for p, r in references.items()}


def _rmia_ratio(logits: torch.Tensor, inputs: AttackInputs, part: str) -> torch.Tensor:
    """Pr(x | audited model) / Pr(x), with Pr(x) from out-reference models and offline scaling a."""
    labels = inputs.labels[part]
    probability = logits.double().softmax(1).gather(1, labels[:, None]).squeeze(1)
    reference = inputs.reference_logits[part].double().softmax(2)
    reference_probability = reference.gather(2, labels.expand(reference.shape[0], -1)[..., None]).squeeze(2)
    a = inputs.rmia_offline_a
    marginal = 0.5 * ((1 + a) * reference_probability.mean(0) + (1 - a))
    return probability / marginal


def rmia(logits: Logits, inputs: AttackInputs, gamma: float = 1.0) -> Scores:
    """Offline RMIA (Zarifzadeh et al. 2024): the share of population samples z that x dominates,
    i.e. whose likelihood ratio it exceeds by more than `gamma`."""
    population = _rmia_ratio(logits["population"], inputs, "population")
    return {p: (_rmia_ratio(logits[p], inputs, p)[:, None] > gamma * population[None, :])
            .double().mean(1).numpy() for p in SCORED_PARTS}


ATTACKS: dict[str, Attack] = {
    "shadow_attack": shadow_attack, "loss_attack": loss_attack, "mia_efficacy": mia_efficacy,
    "lira": lira, "lira_fixed_variance": lira_fixed_variance, "rmia": rmia,
}
check_registry("audit attack", ATTACKS, AUDIT_ATTACKS)
