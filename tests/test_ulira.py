"""U-LiRA's scoring (remi/attacks/ulira.py) in a world where the truth is known: reference models whose
unlearning leaves a trace (or none) of each sample."""

import torch

from remi.attacks.roc import membership_metrics
from remi.attacks.ulira import UnlearnedReferences, held_out_scores, ulira_scores


def _world(trace: float, models: int = 8, samples: int = 1000, seed: int = 0):
    """Per sample a never-trained mean; unlearning leaves it `trace` higher. Returns the references and
    two audited models' confidences: one unlearned the same way, one never trained on the samples."""
    g = torch.Generator().manual_seed(seed)
    never_mean = 2 * torch.randn(samples, generator=g)
    unlearned_mean = never_mean + trace

    def draw(mean):
        return (mean + 0.4 * torch.randn(models, samples, generator=g)).double()

    trained_on = torch.rand(models, samples, generator=g) < 0.5
    # A model that never trained on a sample had nothing to unlearn: its "unlearned" value there must be
    # ignored, so it is absurd here.
    unlearned = torch.where(trained_on, draw(unlearned_mean), torch.full((models, samples), 1e6).double())
    references = UnlearnedReferences(unlearned, draw(never_mean), trained_on)
    audited = {"unlearned": (unlearned_mean + 0.4 * torch.randn(samples, generator=g)).double(),
               "retrained": (never_mean + 0.4 * torch.randn(samples, generator=g)).double()}
    return references, audited


def _auc(references, audited):
    return membership_metrics(ulira_scores(audited["unlearned"], references),
                              ulira_scores(audited["retrained"], references), [0.01])["auc"]


def test_an_unlearning_trace_is_found_and_none_is_not():
    assert _auc(*_world(trace=1.0)) > 0.9
    assert abs(_auc(*_world(trace=0.0)) - 0.5) < 0.04


def test_a_trace_below_what_never_training_gives_is_found_too():
    # Over-suppression: the unlearned models are *less* confident than unseen-data models.
    assert _auc(*_world(trace=-1.0)) > 0.9


def test_held_out_references_measure_the_attacks_power_where_the_truth_is_known():
    for trace, low, high in ((1.0, 0.9, 1.0), (0.0, 0.46, 0.54)):
        references, _ = _world(trace)
        positives, negatives = held_out_scores(references)
        # Every model is held out once: its trained-on samples are positives, the others negatives.
        assert len(positives) + len(negatives) == references.trained_on.numel()
        auc = membership_metrics(positives, negatives, [0.01])["auc"]
        assert low < auc < high, (trace, auc)
