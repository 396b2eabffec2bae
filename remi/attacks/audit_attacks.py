"""The audit's membership attacks: each turns the audited model's logits into per-example scores
(higher = "member") for every scored part (forget, retain sample, audit_holdout).

Offline LiRA and offline RMIA use the shadows as reference models: none of them trained on any audited
sample, so they are "out" models for every sample. Online LiRA uses the online shadows, each trained on a
random half of a pool that holds every audited sample, so each sample has "in" and "out" models.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.distributions import Normal

from remi.attacks.shadow_attack_model import AttackModel
from remi.attacks.signals import logit_scaled_confidence
from remi.catalog import AUDIT_ATTACKS, check_registry
from remi.networks.checkpoints import positions_in_pool

SCORED_PARTS = ("forget", "retain", "audit_holdout")
MIA_EFFICACY_THRESHOLD = 0.5  # SalUn: a forget sample counts as forgotten when P(member) < 0.5


@dataclass
class OnlineShadows:
    """For each scored part: the logit-scaled confidence of each of K online shadows on each sample
    (K, n), and whether that shadow trained on that sample (K, n). `population`: their confidence
    (K, n) on the population part, which none of them (nor any audited model) trained on."""

    confidence: dict[str, torch.Tensor]
    is_member: dict[str, torch.Tensor]
    population: torch.Tensor

    @classmethod
    def from_outputs(cls, outputs: list[dict[str, torch.Tensor]], sample_ids: dict[str, torch.Tensor],
                     labels: dict[str, torch.Tensor], population_logits: torch.Tensor) -> "OnlineShadows":
        """Look the scored samples up in the shadows' saved outputs on their whole pool; `labels` also
        for the population, `population_logits` (K, n, C) the shadows' logits on it."""
        confidence, is_member = {}, {}
        for part in SCORED_PARTS:
            at = positions_in_pool(outputs, sample_ids[part], part)
            confidence[part] = _stacked_confidence(torch.stack([o["logits"][at] for o in outputs]), labels[part])
            is_member[part] = torch.stack([o["is_member"][at] for o in outputs])
        return cls(confidence, is_member, _stacked_confidence(population_logits, labels["population"]))


def _stacked_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(K, n, C) logits of K models on the same n samples -> (K, n) logit-scaled confidences."""
    expanded = labels.expand(logits.shape[0], -1)
    return logit_scaled_confidence(logits.double().flatten(0, 1), expanded.flatten()).view(expanded.shape)


@dataclass
class AttackInputs:
    """What attacks may use besides the audited model's own outputs.

    `labels[part]` for every part; `reference_logits[part]` = (K, n, C) logits of K reference models
    that never saw the part's samples. Parts beyond SCORED_PARTS: `population` (non-members for
    RMIA's pairwise comparison), `fit_members` / `fit_nonmembers` (retain and test samples that
    SalUn's MIA-efficacy classifier is fitted on; disjoint from the scored parts). `online_shadows`
    only when online LiRA is audited.
    """

    labels: dict[str, torch.Tensor]
    reference_logits: dict[str, torch.Tensor]
    attack_model: AttackModel
    rmia_offline_a: float
    online_shadows: OnlineShadows | None = None


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
    return _stacked_confidence(inputs.reference_logits[part], inputs.labels[part])


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


@dataclass
class OnlineGaussians:
    mean_in: dict[str, torch.Tensor]
    mean_out: dict[str, torch.Tensor]
    std_in: torch.Tensor
    std_out: torch.Tensor


def online_gaussians(online: OnlineShadows) -> OnlineGaussians:
    """Per-sample in and out means; one in and one out spread for all samples ("fixed variance", which
    Carlini et al. advise below 64 shadows: a few shadows per side make per-sample variances noisy).
    A sample that no shadow trained on (or that all did) gets the other side's mean shifted by the
    average in-out gap. Fitted over every part `online` holds (the audit: SCORED_PARTS)."""
    mean_in, mean_out, gaps = {}, {}, []
    for part in online.confidence:
        confidence, member = online.confidence[part], online.is_member[part]
        mean_in[part] = (confidence * member).sum(0) / member.sum(0).clamp(min=1)
        mean_out[part] = (confidence * ~member).sum(0) / (~member).sum(0).clamp(min=1)
        gaps.append((mean_in[part] - mean_out[part])[member.any(0) & (~member).any(0)])
    gap = torch.cat(gaps).mean()
    squares = {True: 0.0, False: 0.0}
    degrees = {True: 0, False: 0}
    for part in online.confidence:
        confidence, member = online.confidence[part], online.is_member[part]
        for side, mask, mean in ((True, member, mean_in[part]), (False, ~member, mean_out[part])):
            squares[side] += float((((confidence - mean) ** 2) * mask).sum())
            degrees[side] += int((mask.sum(0) - 1).clamp(min=0).sum())  # one mean per sample estimated
        mean_in[part] = torch.where(member.any(0), mean_in[part], mean_out[part] + gap)
        mean_out[part] = torch.where((~member).any(0), mean_out[part], mean_in[part] - gap)
    if min(degrees.values()) == 0:
        raise ValueError("online LiRA needs samples with two shadows on the same side: train more online shadows")
    return OnlineGaussians(mean_in, mean_out, *(torch.tensor(math.sqrt(squares[side] / degrees[side]) + 1e-6)
                                                 for side in (True, False)))


def online_lira(logits: Logits, inputs: AttackInputs) -> Scores:
    """Online LiRA (Carlini et al. 2022), two-sided: log p(confidence | changed by training) -
    log p(confidence | out), where "changed" is the sample's in-Gaussian or its mirror image about the
    out mean. The in-Gaussian alone would call a forget sample pushed below what unseen data gets a
    confident non-member; the mirror makes that over-suppression exposure too, as strong as the
    memorisation that training left.

    Two-sided, the test would also read a model that is merely less confident overall than the shadows
    as over-suppressing, so the audited model's confidence is first shifted by its median difference
    to the shadows' mean on population samples (non-members of every model), as RMIA compares with a
    population."""
    online = inputs.online_shadows
    if online is None:
        raise ValueError("online_lira needs the online shadows (stage train_online_shadows)")
    fit = online_gaussians(online)
    population = logit_scaled_confidence(logits["population"].double(), inputs.labels["population"])
    offset = (population - online.population.mean(0)).median()
    scores = {}
    for part in SCORED_PARTS:
        confidence = logit_scaled_confidence(logits[part].double(), inputs.labels[part]) - offset
        mean_in, mean_out = fit.mean_in[part], fit.mean_out[part]
        towards = Normal(mean_in, fit.std_in).log_prob(confidence)
        away = Normal(2 * mean_out - mean_in, fit.std_in).log_prob(confidence)
        changed = torch.logaddexp(towards, away) - math.log(2)
        scores[part] = (changed - Normal(mean_out, fit.std_out).log_prob(confidence)).numpy()
    return scores


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
    "lira": lira, "lira_fixed_variance": lira_fixed_variance, "rmia": rmia, "online_lira": online_lira,
}
check_registry("audit attack", ATTACKS, AUDIT_ATTACKS)
