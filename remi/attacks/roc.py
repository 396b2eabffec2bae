"""Membership-inference metrics: higher score = "member".

scikit-learn's ROC is imported inside the functions that use it: importing it takes about 1.7 s on a
2-core CPU, which every stage that only needs `rank_auc` (the unlearn stages, forgetting_quality) would
otherwise pay at start-up (BENCHMARKS.md, "Start-up").
"""

import numpy as np
import torch


def fpr_label(fpr: float) -> str:
    """0.01 -> '1pct', 0.001 -> '0p1pct': metric-name friendly (no dots)."""
    return f"{fpr * 100:g}".replace(".", "p") + "pct"


def membership_metrics(member_scores: np.ndarray, nonmember_scores: np.ndarray,
                       low_fprs: list[float]) -> dict[str, float]:
    """AUC, balanced accuracy at the best threshold, and for each low FPR the best TPR at an FPR
    no higher than it, with the FPR actually reached (`tpr_at_1pct_fpr`, `fpr_reached_1pct`)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    truth = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    scores = np.r_[member_scores, nonmember_scores]
    fpr, tpr, _ = roc_curve(truth, scores)
    metrics = {"auc": float(roc_auc_score(truth, scores)),
               "balanced_accuracy": float(np.max((tpr + 1 - fpr) / 2))}
    for low_fpr in low_fprs:
        within = fpr <= low_fpr
        best = int(np.flatnonzero(within)[np.argmax(tpr[within])])
        metrics[f"tpr_at_{fpr_label(low_fpr)}_fpr"] = float(tpr[best])
        metrics[f"fpr_reached_{fpr_label(low_fpr)}"] = float(fpr[best])
    return metrics


def rank_auc(member_scores: torch.Tensor, nonmember_scores: torch.Tensor) -> float:
    """AUC as the Mann-Whitney statistic, in torch: fast enough to call inside a training loop.

    Tied scores share their average rank, so a tie counts one half, as in scikit-learn's `roc_auc_score`
    (arbitrary ranks moved `remi exposure`'s per-group AUC of MIA-efficacy, whose scores tie in thousands,
    by up to 0.05).
    """
    scores = torch.cat([member_scores, nonmember_scores])
    ordered, order = scores.sort()
    _, tie_group, tie_sizes = torch.unique_consecutive(ordered, return_inverse=True, return_counts=True)
    average_rank = tie_sizes.cumsum(0).double() - (tie_sizes.double() - 1) / 2  # 1-based
    ranks = torch.empty(len(scores), dtype=torch.float64, device=scores.device)
    ranks[order] = average_rank[tie_group]
    count_member, count_nonmember = len(member_scores), len(nonmember_scores)
    rank_sum = ranks[:count_member].sum().item()
    return (rank_sum - count_member * (count_member + 1) / 2) / (count_member * count_nonmember)


def roc_points(member_scores: np.ndarray, nonmember_scores: np.ndarray,
               max_points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) thinned to at most `max_points`, for plots."""
    from sklearn.metrics import roc_curve

    truth = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    fpr, tpr, _ = roc_curve(truth, np.r_[member_scores, nonmember_scores])
    keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
    return fpr[keep], tpr[keep]
