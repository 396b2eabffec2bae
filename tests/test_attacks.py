import numpy as np
import pytest
import torch
from sklearn.metrics import roc_curve

from remi.attacks.audit_attacks import SCORED_PARTS, AttackInputs, OnlineShadows, loss_score, online_lira
from remi.attacks.roc import membership_metrics, rank_auc
from remi.attacks.shadow_attack_model import attack_scores, train_attack_model
from remi.networks.checkpoints import ArtifactError
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


def test_rank_auc_counts_a_tie_as_one_half():
    """MIA-efficacy's scores tie in thousands: arbitrary ranks moved an AUC by up to 0.05."""
    assert rank_auc(torch.tensor([1.0, 1, 1, 0]), torch.tensor([1.0, 1, 0, 0])) == 0.625
    rng = np.random.default_rng(2)
    members, nonmembers = rng.integers(0, 5, 300).astype(float), rng.integers(0, 4, 400).astype(float)
    expected = membership_metrics(members, nonmembers, [0.01])["auc"]
    assert rank_auc(torch.tensor(members), torch.tensor(nonmembers)) == pytest.approx(expected, abs=1e-12)


def _online_world(shadows=8, samples=600, seed=0):
    """Per-sample in/out Gaussians of logit-scaled confidence (in = out + a per-sample gap), K online
    shadows on random halves, and an audited model's confidences drawn for members, non-members and
    over-suppressed samples (pushed below the out mean by as much as training lifts them)."""
    g = torch.Generator().manual_seed(seed)
    out_mean = torch.randn(samples, generator=g) * 3 + 2
    in_mean = out_mean + 1.5 + torch.rand(samples, generator=g) * 2
    is_member = torch.rand(shadows, samples, generator=g) < 0.5
    shadow_confidence = torch.where(is_member, in_mean, out_mean) + 0.5 * torch.randn(shadows, samples, generator=g)
    noise = 0.5 * torch.randn(samples, generator=g)
    audited = {"member": in_mean + noise, "nonmember": out_mean + noise,
               "suppressed": 2 * out_mean - in_mean + noise}
    return shadow_confidence.double(), is_member, {k: c.double() for k, c in audited.items()}


def _online_scores(shadow_confidence, is_member, audited_confidence):
    """online_lira on two-class logits [c, 0] with label 0, whose logit-scaled confidence is c; the
    same samples in every scored part."""
    labels = torch.zeros(len(audited_confidence), dtype=torch.long)
    logits = torch.stack([audited_confidence, torch.zeros_like(audited_confidence)], 1)
    # Population: the audited model as confident as the shadows on average (no offset to correct).
    population = torch.zeros(len(shadow_confidence), 1).double()
    online = OnlineShadows({p: shadow_confidence for p in SCORED_PARTS}, {p: is_member for p in SCORED_PARTS},
                           population)
    inputs = AttackInputs({p: labels for p in SCORED_PARTS} | {"population": torch.zeros(1, dtype=torch.long)}, {},
                          attack_model=None, rmia_offline_a=0.3, online_shadows=online)
    parts = {p: logits for p in SCORED_PARTS} | {"population": torch.zeros(1, 2).double()}
    return online_lira(parts, inputs)["forget"]


def test_online_lira_flags_members_and_over_suppression_but_not_unseen_samples():
    confidence, is_member, audited = _online_world()
    scores = {kind: _online_scores(confidence, is_member, c) for kind, c in audited.items()}
    auc = {kind: membership_metrics(scores[kind], scores["nonmember"][::-1].copy(), [0.01])["auc"]
           for kind in ("member", "suppressed")}
    assert auc["member"] > 0.95 and auc["suppressed"] > 0.95, auc


def test_online_lira_is_at_chance_between_two_draws_of_unseen_samples():
    confidence, is_member, audited = _online_world(samples=2000)
    g = torch.Generator().manual_seed(5)
    first, second = (audited["nonmember"] + 0.5 * torch.randn(2000, generator=g).double() for _ in range(2))
    auc = membership_metrics(_online_scores(confidence, is_member, first),
                             _online_scores(confidence, is_member, second), [0.01])["auc"]
    assert abs(auc - 0.5) < 0.03, auc


def test_online_lira_fills_a_missing_side_from_the_average_gap():
    confidence, is_member, audited = _online_world(shadows=4)
    is_member[:, 0] = True  # sample 0: every shadow trained on it, so it has no out mean of its own
    scores = _online_scores(confidence, is_member, audited["member"])
    assert np.isfinite(scores).all()


def test_online_shadows_are_looked_up_by_sample_id_and_refuse_foreign_samples():
    pool = torch.tensor([7, 3, 11, 5])
    logits = torch.tensor([[2.0, 0.0], [1.0, 0.0], [3.0, 0.0], [4.0, 0.0]])
    is_member = torch.tensor([True, False, True, False])
    outputs = [{"sample_ids": pool, "logits": logits + torch.tensor([k, 0.0]), "is_member": is_member}
               for k in range(2)]
    ids = {"forget": torch.tensor([5, 7]), "retain": torch.tensor([3]), "audit_holdout": torch.tensor([11])}
    labels = {p: torch.zeros(len(i), dtype=torch.long) for p, i in ids.items()}
    population_logits = torch.zeros(2, 1, 2)
    labels["population"] = torch.zeros(1, dtype=torch.long)
    online = OnlineShadows.from_outputs(outputs, ids, labels, population_logits)
    assert online.confidence["forget"].tolist() == [[4.0, 2.0], [5.0, 3.0]]
    assert online.is_member["forget"].tolist() == [[False, True], [False, True]]
    with pytest.raises(ArtifactError, match="audit_holdout samples are not in the online shadows' pool"):
        OnlineShadows.from_outputs(outputs, ids | {"audit_holdout": torch.tensor([12])}, labels, population_logits)


def test_audit_sets_that_leave_mia_efficacy_no_member_to_fit_on_are_refused():
    """In `class` or `requests` mode only the audit knows the retain set's size: it says what to lower."""
    from remi.audit.scoring import AuditSets
    from remi.errors import ParamsError
    from remi.pipeline.params import load_params
    from tests.conftest import REPO

    audit = load_params(REPO / "params.yaml").audit.model_copy(update={"retain_samples": 30, "fit_samples": 20})
    ids = torch.arange(200)
    with pytest.raises(ParamsError, match=r"= 50, but the retain set .* holds 50: lower them"):
        AuditSets.draw(ids[:10], ids[10:60], ids[60:100], ids[100:], audit)
    sets = AuditSets.draw(ids[:10], ids[10:61], ids[61:100], ids[100:], audit)
    assert len(sets.retain) == 30 and len(sets.fit_members) == 20


def test_a_saved_shadow_is_reused_only_while_its_loader_and_torch_are_the_same(monkeypatch):
    """The raw files' digest does not change when the loader normalises them differently."""
    from remi.attacks import shadow_models
    from remi.pipeline.params import load_params
    from tests.conftest import REPO

    params = load_params(REPO / "params.yaml")

    def fingerprint(p):
        return shadow_models.shadow_fingerprint(0, p.shadows, p, pool_md5="pool", data_digest="raw")

    same_raw_other_loader = params.model_copy(update={"data": params.data.model_copy(update={"dataset": "mnist_5k"})})
    assert fingerprint(params) == fingerprint(params) != fingerprint(same_raw_other_loader)
    before = fingerprint(params)
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    assert fingerprint(params) != before
