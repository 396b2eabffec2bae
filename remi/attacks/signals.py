"""Membership signals computed from a model's outputs; all differentiable w.r.t. the logits."""

import torch
import torch.nn.functional as F


def logit_scaled_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log(p_y / (1 - p_y)), computed from logits so it does not saturate at p_y = 1."""
    true_logit = logits.gather(1, labels[:, None]).squeeze(1)
    # scatter writes -inf into the true class in one pass; a one-hot mask costs two more (ReMI calls this
    # several times per step, where each pass shows)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return true_logit - torch.logsumexp(others, dim=1)


def attack_features(logits: torch.Tensor, labels: torch.Tensor, top_k: int = 3) -> torch.Tensor:
    """phi: what the attack model sees of one output vector.

    Sorted top-k log-probabilities, the logit-scaled true-class confidence, the loss, the entropy
    and the one-hot label (classes differ in difficulty, so the label lets the attack calibrate).
    """
    log_probs = F.log_softmax(logits, dim=1)
    top = log_probs.topk(top_k, dim=1).values
    loss = -log_probs.gather(1, labels[:, None])
    entropy = -(log_probs.exp() * log_probs).sum(1, keepdim=True)
    confidence = logit_scaled_confidence(logits, labels)[:, None]
    one_hot = F.one_hot(labels, logits.shape[1]).float()
    return torch.cat([top, confidence, loss, entropy, one_hot], dim=1)


MIN_VARIANCE = 1e-4  # of a signal's Gaussian: one forget sample drawn into a whole batch has none


def gaussian_kl(mean_p: torch.Tensor, var_p: torch.Tensor,
                mean_q: torch.Tensor, var_q: torch.Tensor) -> torch.Tensor:
    """KL(N(mean_p, var_p) || N(mean_q, var_q)) in closed form. The variances are floored: an erasure request
    of one sample gives ReMI forget batches of one value repeated (variance 0), whose KL would be infinite
    and its gradient huge."""
    var_p, var_q = var_p.clamp_min(MIN_VARIANCE), var_q.clamp_min(MIN_VARIANCE)
    return 0.5 * (torch.log(var_q / var_p) + (var_p + (mean_p - mean_q) ** 2) / var_q - 1)


def quantile_distance(samples: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the sorted `samples` and `target`'s quantiles at the same levels
    (the squared 2-Wasserstein distance between the two empirical distributions, in one dimension).
    Unlike two moments, it sees a tail: a few samples far above the target's largest values cost as much
    as they differ, whatever the rest do."""
    levels = (torch.arange(len(samples), device=samples.device, dtype=samples.dtype) + 0.5) / len(samples)
    return (samples.sort().values - torch.quantile(target, levels)).pow(2).mean()
