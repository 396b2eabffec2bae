import numpy as np
import pytest
import torch
from sklearn.metrics import roc_curve

from remi.attacks.audit_attacks import loss_score
from remi.attacks.roc import membership_metrics, rank_auc
from remi.attacks.shadow_attack_model import attack_scores, train_attack_model
from remi.params_schema import Attack

ATTACK = Attack(hidden_units=16, epochs=5, batch_size=256, lr=0.01, holdout_shadows=1, seed=0)


def _outputs(count, confidence, generator):
    """Logits whose true class leads by `confidence` (+ noise)."""
    labels = torch.randint(0, 10, (count,), generator=generator)
    logits = torch.randn(count, 10, generator=generator)
    logits[torch.arange(count), labels] += confidence + torch.randn(count, generator=generator)
    return logits, labels


def _fit_and_score(member_confidence, nonmember_confidence):
    g = torch.Generator().manual_seed(0)
    # fit on one draw, score a fresh one
    parts = [_outputs(3000, c, g) for c in (member_confidence, nonmember_confidence) * 2]
    (lm, ym), (ln, yn), (tm, tym), (tn, tyn) = parts
    attack = train_attack_model(torch.cat([lm, ln]), torch.cat([ym, yn]),
                                torch.cat([torch.ones(3000), torch.zeros(3000)]).bool(), ATTACK)
    return attack_scores(attack, tm, tym), attack_scores(attack, tn, tyn), (tm, tym, tn, tyn)


def test_attack_on_identical_distributions_is_chance():
    members, nonmembers, (tm, tym, tn, tyn) = _fit_and_score(4.0, 4.0)
    assert abs(membership_metrics(members, nonmembers, [0.01])["auc"] - 0.5) < 0.03
    loss = membership_metrics(loss_score(tm, tym), loss_score(tn, tyn), [0.01])
    assert abs(loss["auc"] - 0.5) < 0.03


def test_attack_on_well_separated_distributions_is_near_perfect():
    members, nonmembers, (tm, tym, tn, tyn) = _fit_and_score(12.0, 0.0)
    assert membership_metrics(members, nonmembers, [0.01])["auc"] > 0.97
    assert membership_metrics(loss_score(tm, tym), loss_score(tn, tyn), [0.01])["auc"] > 0.97


def test_tpr_at_low_fpr_matches_an_independent_roc_and_respects_the_fpr():
    rng = np.random.default_rng(0)
    members, nonmembers = rng.normal(1, 1, 2000), rng.normal(0, 1, 5000)
    metrics = membership_metrics(members, nonmembers, [0.01, 0.001])
    assert metrics["fpr_reached_1pct"] <= 0.01 and metrics["fpr_reached_0p1pct"] <= 0.001
    # independent: threshold at the 99th percentile of non-member scores
    threshold = np.sort(nonmembers)[-int(0.01 * len(nonmembers))]
    assert abs(metrics["tpr_at_1pct_fpr"] - (members > threshold).mean()) < 0.005
    fpr, tpr, _ = roc_curve(np.r_[np.ones(2000), np.zeros(5000)], np.r_[members, nonmembers])
    assert metrics["tpr_at_1pct_fpr"] == pytest.approx(tpr[fpr <= 0.01].max())
    assert metrics["tpr_at_0p1pct_fpr"] == pytest.approx(tpr[fpr <= 0.001].max())
    assert metrics["tpr_at_0p1pct_fpr"] == pytest.approx(tpr[fpr <= 0.001].max())


def test_rank_auc_agrees_with_sklearn():
    rng = np.random.default_rng(1)
    members, nonmembers = rng.normal(0.3, 1, 700), rng.normal(0, 1, 900)
    expected = membership_metrics(members, nonmembers, [0.01])["auc"]
    assert rank_auc(torch.tensor(members), torch.tensor(nonmembers)) == pytest.approx(expected, abs=1e-9)
