"""Where a model retrained on the retain set would put forget against out, estimated by nearest neighbours.

A retrained model never saw forget or out, yet its forget-vs-holdout AUCs sit where the draw puts them
(letter: LiRA 0.48-0.52 over three pipeline seeds): a forget set whose samples lie closer to retain samples
of their own class than out's do is easier for any model trained on retain. The shadows cannot show this,
because they trained on other data (`remi.stop_target: shadows` did not move letter's gaps). A
k-nearest-neighbour model of the retain set can, at the cost of one distance computation in input space:
each sample's margin (mean distance to its k nearest retain samples of other classes minus that to its k
nearest of its own) ranks forget against out for both AUC targets, and the neighbours' majority vote gives
the accuracy gap target. Measured (BENCHMARKS.md, "A stop target from the retain set's neighbours"): on
letter it lowers every attack's mean gap, but ReMI follows the draw only part of the way; on Fashion-MNIST's
pixels it stops too soon.
"""

import torch

from remi.attacks.roc import rank_auc
from remi.unlearning.base import Samples

NEIGHBOURS = 5  # k: few enough that a sample's own neighbourhood decides, enough to smooth single outliers
QUERY_CHUNK = 512  # query rows per distance block: (512 x retain) floats, whatever the profile's size


def neighbour_separation(retain: Samples, forget: Samples, out: Samples) -> dict[str, float]:
    """The stop rule's targets from the retain set's nearest neighbours: forget-vs-out AUC of the margin (for
    both the signal's and the estimator's AUC) and the accuracy gap of the k-nearest-neighbour vote."""
    forget_margin, forget_correct = margins_and_votes(retain, forget)
    out_margin, out_correct = margins_and_votes(retain, out)
    auc = rank_auc(forget_margin, out_margin)
    return {"signal_auc": auc, "leakage_auc": auc,
            "accuracy_gap": (forget_correct.float().mean() - out_correct.float().mean()).item()}


def margins_and_votes(retain: Samples, queries: Samples) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query: its margin over the retain set, and whether its k nearest retain samples vote its label (also
    what `remi fq-anatomy` asks of the retain set, for a per-sample location)."""
    retain_x, retain_y = retain[0].flatten(1).float(), retain[1]
    query_x, query_y = queries[0].flatten(1).float().to(retain_x.device), queries[1].to(retain_y.device)
    margins, correct = [], []
    num_classes = int(torch.maximum(retain_y.max(), query_y.max())) + 1
    for x, y in zip(query_x.split(QUERY_CHUNK), query_y.split(QUERY_CHUNK), strict=True):
        distances = torch.cdist(x, retain_x)
        same = retain_y[None, :] == y[:, None]
        margins.append(_nearest_mean(distances, ~same) - _nearest_mean(distances, same))
        nearest = retain_y[distances.topk(min(NEIGHBOURS, len(retain_y)), largest=False).indices]
        votes = torch.nn.functional.one_hot(nearest, num_classes).sum(1)
        correct.append(votes.argmax(1) == y)
    return torch.cat(margins).cpu(), torch.cat(correct)


def _nearest_mean(distances: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Mean distance to the k nearest allowed retain samples of each query (fewer if fewer are allowed; infinite
    if none is: a forgotten class has no retain samples left, so its samples are as far from their own class as
    can be, which is where a model retrained without the class puts them)."""
    masked = distances.masked_fill(~allowed, float("inf"))
    nearest = masked.topk(min(NEIGHBOURS, masked.shape[1]), largest=False).values
    finite = nearest.isfinite()
    count = finite.sum(1)
    mean = nearest.where(finite, 0.0).sum(1) / count.clamp(min=1)
    return mean.masked_fill(count == 0, float("inf"))
