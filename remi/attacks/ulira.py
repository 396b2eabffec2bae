"""U-LiRA (Hayes et al. 2024, "Inexact unlearning needs more careful evaluations to avoid a false sense
of privacy"): was this model trained on x and then unlearned, or never trained on x?

Population attacks ask whether x looks like a member; an inexact method can pass them while still
leaving a trace that only a comparison with *unlearned* models reveals. U-LiRA models both answers per
sample: reference models that trained on x and then ran the unlearning method ("unlearned"), and
reference models that never trained on x ("never trained"); the score is the likelihood ratio of the
audited model's logit-scaled confidence on x under the two Gaussians. Here the reference models are the
online shadows (each trained on a random half of a pool that holds every forget sample), each
unlearning the forget samples it trained on; for a forget sample, the shadows that trained on it give
the unlearned side and the others the never-trained side. Gaussians as online LiRA fits them (a mean per
sample and side, one spread per side; remi.attacks.audit_attacks.online_gaussians).
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch.distributions import Normal

from remi.attacks.audit_attacks import OnlineShadows, online_gaussians


@dataclass
class UnlearnedReferences:
    """On the n forget samples, for each of K reference models: its confidence after unlearning (K, n),
    its confidence before unlearning (K, n), and whether it trained on the sample (K, n): only then did
    it unlearn it. Before unlearning, on a sample it did not train on, a reference model is a model
    that never trained on that sample, as a retrained one."""

    unlearned: torch.Tensor
    original: torch.Tensor
    trained_on: torch.Tensor

    def subset(self, models: torch.Tensor) -> "UnlearnedReferences":
        return UnlearnedReferences(self.unlearned[models], self.original[models], self.trained_on[models])

    def as_online_shadows(self) -> OnlineShadows:
        """"In" = trained on the sample and unlearned it; "out" = never trained on it (nor unlearned)."""
        confidence = torch.where(self.trained_on, self.unlearned, self.original)
        return OnlineShadows({"forget": confidence}, {"forget": self.trained_on}, torch.empty(0))


def ulira_scores(confidence: torch.Tensor, references: UnlearnedReferences) -> np.ndarray:
    """Per forget sample, log p(confidence | unlearned) - log p(confidence | never trained): higher =
    "this model was unlearned", 0 = the two are alike for this sample."""
    fit = online_gaussians(references.as_online_shadows())
    unlearned = Normal(fit.mean_in["forget"], fit.std_in).log_prob(confidence.double())
    never_trained = Normal(fit.mean_out["forget"], fit.std_out).log_prob(confidence.double())
    return (unlearned - never_trained).numpy()


def held_out_scores(references: UnlearnedReferences) -> tuple[np.ndarray, np.ndarray]:
    """The attack's own test, where the truth is known: each reference model in turn is held out and
    scored with Gaussians fitted on the others; its confidences after unlearning on the samples it
    trained on are the positives, its confidences before unlearning (a model that never trained on them,
    as a retrained model is) on the samples it did not train on the negatives. As in the audited pair
    (the method's model vs the retrained one), a change the method makes to the whole model, such as
    its overall confidence, counts as a trace. Returns (positives, negatives), pooled over the held-out
    models."""
    positives, negatives = [], []
    everyone = torch.arange(len(references.trained_on))
    for held_out in everyone.tolist():
        others = references.subset(everyone[everyone != held_out])
        trained_on = references.trained_on[held_out]
        positives.append(ulira_scores(references.unlearned[held_out], others)[trained_on.numpy()])
        negatives.append(ulira_scores(references.original[held_out], others)[~trained_on.numpy()])
    return np.concatenate(positives), np.concatenate(negatives)
