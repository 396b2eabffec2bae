import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from remi.attacks.roc import rank_auc
from remi.attacks.shadow_attack_model import AttackModel, fit_class_gaussians
from remi.attacks.signals import gaussian_kl, logit_scaled_confidence, quantile_distance
from remi.errors import ParamsError
from remi.networks.architectures import small_cnn
from remi.networks.training import accuracy
from remi.params_schema import Remi
from remi.pipeline.params import load_params
from remi.unlearning.leakage_estimators import ESTIMATORS
from remi.unlearning.neighbour_target import neighbour_separation
from remi.unlearning.remi import (
    CheckSamples,
    anchor_samples,
    check_references,
    distinguishability,
    expected_signal,
    fixed_targets,
    looks_unseen,
    loss_terms,
    reference_logits,
    split_head,
    strength_gap,
    true_class_against_rest,
    unseen_divergence,
    unseen_prediction,
    unseen_separation,
)
from tests.conftest import REPO


def test_gaussian_kl_matches_a_monte_carlo_estimate():
    torch.manual_seed(0)
    mean_p, var_p, mean_q, var_q = (torch.tensor(v, dtype=torch.float64) for v in (1.0, 0.5, -0.3, 2.0))
    samples = mean_p + var_p.sqrt() * torch.randn(400_000, dtype=torch.float64)

    def log_density(x, mean, var):
        return -0.5 * (torch.log(2 * torch.pi * var) + (x - mean) ** 2 / var)

    monte_carlo = (log_density(samples, mean_p, var_p) - log_density(samples, mean_q, var_q)).mean()
    assert abs(gaussian_kl(mean_p, var_p, mean_q, var_q) - monte_carlo) < 0.01
    assert gaussian_kl(mean_p, var_p, mean_p, var_p) == 0


def test_logit_scaled_confidence_is_log_odds_and_does_not_saturate():
    logits = torch.tensor([[2.0, 0.0, -1.0], [40.0, 0.0, 0.0]])
    labels = torch.tensor([0, 0])
    scores = logit_scaled_confidence(logits, labels)
    p = logits.softmax(1)[0, 0]
    assert torch.isclose(scores[0], torch.log(p / (1 - p)), atol=1e-5)
    assert torch.isfinite(scores[1]) and scores[1] > 35  # softmax alone would round p_y to 1


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_remi_loss_gradients_reach_every_weight_of_the_target(estimator):
    torch.manual_seed(0)
    model = small_cnn((1, 28, 28), 10, 4, 8, 16)
    _, head = split_head(model, 0)
    x, y = torch.randn(40, 1, 28, 28), torch.randint(0, 10, (40,))
    out_logits = head(torch.randn(40, 1, 28, 28)).detach()
    task = SimpleNamespace(attack=AttackModel(num_features=16, hidden_units=8).requires_grad_(False),
                           class_gaussians=fit_class_gaussians(out_logits, y))
    leakage = ESTIMATORS[estimator](task, (out_logits, y))
    teacher = torch.log_softmax(copy.deepcopy(head)(x), dim=1).detach()
    out_signal = logit_scaled_confidence(out_logits, y)
    terms = loss_terms(head, leakage, retain=(x, y, teacher), forget=(x, y, torch.zeros(40)), out_signal=out_signal)
    for name in ("mi", "kl"):  # the two unlearning terms, each on its own
        model.zero_grad()
        terms[name].backward(retain_graph=True)
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()), name


def test_class_gaussians_recover_per_class_statistics_and_score_in_standard_deviations():
    torch.manual_seed(0)
    labels = torch.arange(3).repeat_interleave(20_000)
    means, stds = torch.tensor([-1.0, 2.0, 5.0]), torch.tensor([0.5, 1.0, 2.0])
    signal = means[labels] + stds[labels] * torch.randn(len(labels))
    # logits whose logit-scaled confidence is exactly `signal` (two classes: the true one and one other)
    logits = torch.zeros(len(labels), 3)
    logits[torch.arange(len(labels)), labels] = signal
    logits[torch.arange(len(labels)), (labels + 1) % 3] = 0.0
    logits[torch.arange(len(labels)), (labels + 2) % 3] = -1e4
    gaussians = fit_class_gaussians(logits, labels)
    assert torch.allclose(gaussians.mean, means, atol=0.05) and torch.allclose(gaussians.std, stds, rtol=0.03)
    one_above = logits[[0, 20_000]].clone()
    one_above[0, 0], one_above[1, 1] = -0.5, 3.0  # one standard deviation above each class's mean
    assert torch.allclose(gaussians(one_above, torch.tensor([0, 1])), torch.ones(2), atol=0.1)


def test_loss_threshold_estimator_is_zero_at_the_out_median():
    out_logits, labels = torch.randn(501, 4), torch.randint(0, 4, (501,))
    leakage = ESTIMATORS["loss_threshold"](SimpleNamespace(), (out_logits, labels))
    scores = leakage(out_logits, labels)
    assert abs(scores.median().item()) < 1e-6 and torch.isclose(scores.std(), torch.tensor(1.0), atol=1e-4)


def test_split_head_freezes_all_but_the_last_layers():
    model = small_cnn((1, 28, 28), 10, 4, 8, 16)
    frozen, head = split_head(model, 2)
    assert all(not p.requires_grad for p in frozen.parameters())
    assert sum(isinstance(layer, torch.nn.Linear) for layer in head) == 2
    assert all(p.requires_grad for p in head.parameters())


def test_the_signal_is_measured_from_each_samples_mean_under_the_reference_models():
    torch.manual_seed(0)
    references = [small_cnn((1, 28, 28), 10, 4, 8, 16).eval() for _ in range(3)]
    x, y = torch.randn(30, 1, 28, 28), torch.randint(0, 10, (30,))
    with torch.no_grad():
        by_hand = torch.stack([logit_scaled_confidence(r(x), y) for r in references]).mean(0)
    logits = reference_logits(SimpleNamespace(references=references), x)  # type: ignore[arg-type]
    assert logits.shape == (3, 30, 10)
    assert torch.allclose(expected_signal(logits, y), by_hand, atol=1e-5)
    assert torch.equal(expected_signal(None, y), torch.zeros(30))  # signal_reference: population


def test_settings_that_need_reference_models_are_refused_without_them():
    without = SimpleNamespace(references=[], references_unseen=None)
    defaults = load_params(REPO / "params.yaml").remi

    def settings(reference: str, lambda_unseen: float) -> Remi:
        return defaults.model_copy(update={"signal_reference": reference, "lambda_unseen": lambda_unseen})

    with pytest.raises(ParamsError, match="signal_reference = shadows needs reference models"):
        check_references(without, settings("shadows", 0.0))  # type: ignore[arg-type]
    with pytest.raises(ParamsError, match="lambda_unseen > 0 needs reference models"):
        check_references(without, settings("population", 1.0))  # type: ignore[arg-type]
    with pytest.raises(ParamsError, match="stop_target = shadows needs reference models"):
        check_references(without, settings("population", 0.0).model_copy(update={"stop_target": "shadows"}))
    check_references(without, settings("population", 0.0))  # type: ignore[arg-type]


@pytest.mark.parametrize("update", [{"signal_reference": "shadows"}, {"lambda_unseen": 1.0},
                                    {"stop_target": "shadows"}, {}])
def test_the_stage_loads_the_shadows_for_every_setting_that_needs_them(monkeypatch, update):
    """What check_references refuses without reference models, the stage's task must have loaded."""
    from remi.pipeline import tasks

    params = load_params(REPO / "params.yaml")
    remi = params.remi.model_copy(update={"signal_reference": "population", "lambda_unseen": 0.0,
                                          "stop_target": "fixed"} | update)
    monkeypatch.setattr(tasks, "load_model", lambda directory, device: directory)
    updated = params.model_copy(update={"remi": remi})
    references = tasks._shadows(updated, torch.device("cpu"), None) if tasks._wants_references(updated, "remi") else []
    assert len(references) == (params.shadows.count if update else 0)
    task = SimpleNamespace(references=references, references_unseen=None)
    check_references(task, remi)  # type: ignore[arg-type]


def _small_head_and_batch():
    """A small CNN trained as a whole (its head is the model), 40 samples, its own outputs as the
    retain teacher, and the loss-threshold estimator calibrated on them."""
    torch.manual_seed(0)
    model = small_cnn((1, 28, 28), 10, 4, 8, 16)
    _, head = split_head(model, 0)
    x, y = torch.randn(40, 1, 28, 28), torch.randint(0, 10, (40,))
    teacher = torch.log_softmax(head(x), dim=1).detach()
    return model, head, x, y, teacher, ESTIMATORS["loss_threshold"](None, (head(x).detach(), y))


def test_the_kl_term_compares_each_forget_samples_excess_over_its_reference_with_out():
    _, head, x, y, teacher, leakage = _small_head_and_batch()
    with torch.no_grad():
        signal = logit_scaled_confidence(head(x), y)
    expected, out_signal = signal - 1.0 + 0.5 * torch.randn(40), torch.randn(200)
    terms = loss_terms(head, leakage, retain=(x, y, teacher), forget=(x, y, expected), out_signal=out_signal)
    excess = signal - expected  # what an unseen model would not give these samples
    assert torch.isclose(terms["kl"], gaussian_kl(excess.mean(), excess.var(), out_signal.mean(), out_signal.var()),
                         atol=1e-4)


def test_the_unseen_teacher_is_one_reference_model_per_forget_sample_drawn_by_the_seed():
    torch.manual_seed(0)
    references = [small_cnn((1, 28, 28), 10, 4, 8, 16).eval() for _ in range(3)]
    x = torch.randn(200, 1, 28, 28)
    logits = reference_logits(SimpleNamespace(references=references), x)  # type: ignore[arg-type]
    labels = torch.randint(10, (200,))
    teacher = unseen_prediction(logits, labels, torch.Generator().manual_seed(5))
    with torch.no_grad():
        each = torch.stack([model(x).log_softmax(1) for model in references])  # (models, samples, classes)
    matches = (teacher[None] - each).abs().amax(2) < 1e-5  # which model's output each row is
    assert matches.any(0).all(), "every row is some reference model's output"
    assert matches.sum(1).min() > 40, "and every model teaches a share of the samples"
    assert torch.equal(teacher, unseen_prediction(logits, labels, torch.Generator().manual_seed(5)))


def test_references_that_trained_on_some_samples_stand_in_only_where_they_never_did():
    # Online shadows as references: each trained on half the samples, so each sample's reference point and its
    # teacher must come from the models that never saw it.
    torch.manual_seed(0)
    samples, labels = 400, torch.randint(10, (400,))
    references = torch.randn(4, samples, 10)
    unseen = torch.rand(4, samples) < 0.5
    unseen[torch.randint(4, (samples,)), torch.arange(samples)] = True  # every sample has one
    confidences = torch.stack([logit_scaled_confidence(logits, labels) for logits in references])
    by_hand = torch.stack([confidences[unseen[:, i], i].mean() for i in range(samples)])
    assert torch.allclose(expected_signal(references, labels, unseen), by_hand, atol=1e-5)
    assert not torch.allclose(expected_signal(references, labels), by_hand, atol=1e-2), "the mask matters here"
    assert strength_gap(references[0], references, labels, unseen) == pytest.approx(
        float((confidences[0] - by_hand).mean()), abs=1e-5)

    teacher = unseen_prediction(references, labels, torch.Generator().manual_seed(3), unseen=unseen)
    matches = (teacher[None] - references.log_softmax(2)).abs().amax(2) < 1e-5  # which model's output each row is
    assert matches.any(0).all() and not (matches & ~unseen).any(), "only a model that never saw the sample teaches"
    assert (matches.sum(1) > 40).all(), "and every model teaches a share of the samples it never saw"


def test_a_whole_model_stop_target_is_refused_with_references_that_trained_on_some_samples():
    defaults = load_params(REPO / "params.yaml").remi
    online = SimpleNamespace(references=[torch.nn.Identity()], references_unseen=object())
    with pytest.raises(ParamsError, match="with the online shadows as references, set it to fixed"):
        check_references(online, defaults.model_copy(update={"stop_target": "shadows"}))  # type: ignore[arg-type]
    check_references(online, defaults)  # type: ignore[arg-type]


def test_a_raised_teacher_is_as_much_surer_of_the_true_class_as_the_target_is_on_out():
    torch.manual_seed(0)
    base = torch.randn(300, 10)
    labels = torch.randint(10, (300,))
    # Four references whose logit-scaled confidences differ by +-1 around the base's, so their mean is the base's.
    references = torch.stack([base.clone() for _ in range(4)])
    for model, shift in enumerate((-1.0, 1.0, -0.5, 0.5)):
        references[model, torch.arange(300), labels] += shift
    gap = 2.5
    # A target whose true-class logit, and so its logit-scaled confidence, sits `gap` above the base's everywhere.
    target = base.clone()
    target[torch.arange(300), labels] += gap
    measured = strength_gap(target, references, labels)
    assert measured == pytest.approx(gap, abs=1e-4)
    assert strength_gap(base, references, labels) == pytest.approx(0.0, abs=1e-4), "no lead, no raise"

    plain = unseen_prediction(references, labels, torch.Generator().manual_seed(1))
    kept = references.clone()
    raised = unseen_prediction(references, labels, torch.Generator().manual_seed(1), raise_by=measured)
    assert torch.equal(references, kept), "the reference models' logits are not raised in place"
    rise = (logit_scaled_confidence(raised, labels) - logit_scaled_confidence(plain, labels))
    assert torch.allclose(rise, torch.full_like(rise, measured), atol=1e-3), "every teacher row rises by the gap"
    plain_right, raised_right = plain.argmax(1) == labels, raised.argmax(1) == labels
    assert not (plain_right & ~raised_right).any(), "a raised teacher is right wherever the plain one was"
    assert raised_right.sum() > plain_right.sum()


def test_the_unseen_term_is_zero_only_when_forget_predictions_match_the_unseen_model():
    model, head, x, y, teacher, leakage = _small_head_and_batch()
    batch = {"retain": (x, y, teacher), "forget": (x, y, torch.zeros(40)), "out_signal": torch.randn(200)}
    assert "unseen" not in loss_terms(head, leakage, **batch)  # type: ignore[arg-type]
    same = loss_terms(head, leakage, **batch, unseen_log_probs=teacher)  # type: ignore[arg-type]
    other = loss_terms(head, leakage, **batch, unseen_log_probs=teacher.flip(1))  # type: ignore[arg-type]
    assert abs(same["unseen"].item()) < 1e-5 < other["unseen"].item()
    model.zero_grad()
    other["unseen"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_the_unseen_term_on_the_true_class_ignores_how_the_wrong_classes_share_the_rest():
    torch.manual_seed(0)
    labels = torch.randint(0, 10, (50,))
    student = torch.randn(50, 10).log_softmax(1)
    pair = true_class_against_rest(student, labels)
    assert torch.allclose(pair[:, 0], student[torch.arange(50), labels])
    assert torch.allclose(pair.exp().sum(1), torch.ones(50))  # a distribution over {true class, the rest}
    # The same true-class probability, the rest shared out otherwise among the wrong classes.
    wrong = torch.ones(50, 10).scatter(1, labels[:, None], 0.0).bool()
    shuffled = student.clone()
    shuffled[wrong] = student[wrong].view(50, 9).roll(1, dims=1).flatten()
    assert unseen_divergence(student, shuffled, labels, "confidence").abs() < 1e-6
    assert unseen_divergence(student, shuffled, labels, "distribution") > 0.1
    # A teacher surer of the true class is seen by both.
    surer = (student + 3.0 * F.one_hot(labels, 10)).log_softmax(1)
    assert unseen_divergence(student, surer, labels, "confidence") > 0.1
    assert torch.isclose(unseen_divergence(student, surer, labels, "distribution"),
                         F.kl_div(student, surer, log_target=True, reduction="batchmean"))


def test_the_anchor_is_zero_for_the_original_and_sees_a_global_confidence_drop():
    torch.manual_seed(0)
    model = small_cnn((1, 28, 28), 10, 4, 8, 16).eval()
    frozen, head = split_head(model, 2)
    x, y = torch.randn(40, 1, 28, 28), torch.randint(0, 10, (40,))
    out = torch.randn(20, 1, 28, 28), torch.randint(0, 10, (20,))
    with torch.no_grad():
        retain = frozen(x), y, torch.log_softmax(head(frozen(x)), dim=1)
        anchor = anchor_samples(frozen, head, out)
        assert torch.allclose(anchor[2], logit_scaled_confidence(model(out[0]), out[1]), atol=1e-5)
    leakage = ESTIMATORS["loss_threshold"](None, (head(retain[0]).detach(), y))
    batch = {"retain": retain, "forget": (retain[0], y, torch.zeros(40)), "out_signal": torch.randn(200)}
    assert "anchor" not in loss_terms(head, leakage, **batch)  # type: ignore[arg-type]
    assert loss_terms(head, leakage, **batch, anchor=anchor)["anchor"].item() < 1e-10  # type: ignore[arg-type]
    last = head[-1]
    with torch.no_grad():  # a global confidence drop: every logit shrinks by the same factor
        last.weight.mul_(0.5)
        last.bias.mul_(0.5)
    dropped = loss_terms(head, leakage, **batch, anchor=anchor)  # type: ignore[arg-type]
    retain_only = loss_terms(head, leakage, **batch, anchor=tuple(t[:0] for t in anchor))  # type: ignore[arg-type]
    assert dropped["anchor"].item() > 1e-3 and retain_only["anchor"].item() > 1e-3
    dropped["anchor"].backward()
    assert last.weight.grad is not None and last.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(("signal_auc", "leakage_auc", "accuracy_gap", "stops"), [
    (0.60, 0.51, 0.00, False),  # the signal still ranks forget above out
    (0.51, 0.50, 0.01, True),   # both AUCs at the target and forget no more accurate than out
    (0.51, 0.49, 0.08, False),  # AUCs at the target, but forget still clearly more accurate
    (0.51, 0.45, 0.08, True),   # the estimator went past the target: more steps only deepen it
    (0.55, 0.45, 0.08, False),  # ...unless the other AUC has not come down yet
])
def test_the_stop_rule_waits_for_every_score_but_not_past_an_overshoot(signal_auc, leakage_auc, accuracy_gap, stops):
    p = SimpleNamespace(target_auc=0.5, auc_tolerance=0.02, accuracy_tolerance=0.02)
    separation = {"signal_auc": signal_auc, "leakage_auc": leakage_auc, "accuracy_gap": accuracy_gap}
    assert looks_unseen(separation, p, fixed_targets(p)) is stops  # type: ignore[arg-type]
    # Aimed at what unseen models show, the same rule is the same rule shifted by their separation.
    shift = {"signal_auc": 0.03, "leakage_auc": -0.02, "accuracy_gap": 0.05}
    shifted = {key: value + shift[key] for key, value in separation.items()}
    targets = {key: value + shift[key] for key, value in fixed_targets(p).items()}  # type: ignore[arg-type]
    assert looks_unseen(shifted, p, targets) is stops  # type: ignore[arg-type]


def test_the_stop_target_from_the_shadows_is_what_models_that_never_saw_forget_or_out_show():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(400) % 4
    forget = (torch.zeros(200, 1), labels[:200], torch.zeros(200))
    out = (torch.zeros(200, 1), labels[200:], torch.zeros(200))

    def unseen_model_logits(margin: float) -> torch.Tensor:
        """Logits of an unseen model whose confidence on the label is `margin` higher on forget than on out."""
        logits = torch.randn(400, 4, generator=generator)
        logits[torch.arange(400), labels] += torch.cat([torch.full((200,), margin), torch.zeros(200)])
        return logits

    def separation(margin: float) -> dict[str, float]:
        references = torch.stack([unseen_model_logits(margin) for _ in range(4)])
        return unseen_separation(references[:, :200], references[:, 200:], CheckSamples.of(forget, out),
                                 lambda logits, y: logit_scaled_confidence(logits, y))

    # Unseen models that find this forget set no easier than out aim the stop at about 0.5 and no gap...
    even = separation(0.0)
    assert abs(even["signal_auc"] - 0.5) < 0.05 and abs(even["leakage_auc"] - 0.5) < 0.05
    assert abs(even["accuracy_gap"]) < 0.08
    # ...and ones that find it easier aim it where they stand, not at 0.5.
    easier = separation(1.0)
    assert easier["signal_auc"] > 0.6 and easier["leakage_auc"] > 0.6 and easier["accuracy_gap"] > 0.1


def test_one_pass_over_forget_and_out_checks_what_two_passes_would():
    generator = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(6, 4)
    forget = (torch.randn(30, 6, generator=generator), torch.arange(30) % 4, torch.randn(30, generator=generator))
    out = (torch.randn(50, 6, generator=generator), torch.arange(50) % 4, torch.randn(50, generator=generator))
    leakage = AttackModel(10, 8).eval()  # phi of 4 classes: top 3, confidence, loss, entropy, label
    separation, out_signal = distinguishability(head, leakage, CheckSamples.of(forget, out))

    with torch.no_grad():
        forget_logits, out_logits = head(forget[0]), head(out[0])
        forget_signal = logit_scaled_confidence(forget_logits, forget[1]) - forget[2]
        expected_out_signal = logit_scaled_confidence(out_logits, out[1]) - out[2]
        leakage_auc = rank_auc(leakage(forget_logits, forget[1]), leakage(out_logits, out[1]))
    assert torch.allclose(out_signal, expected_out_signal)
    assert separation["signal_auc"] == pytest.approx(rank_auc(forget_signal, expected_out_signal))
    assert separation["leakage_auc"] == pytest.approx(leakage_auc)
    accuracy_gap = accuracy(forget_logits, forget[1]) - accuracy(out_logits, out[1])
    assert separation["accuracy_gap"] == pytest.approx(accuracy_gap)


def test_the_stop_target_from_the_neighbours_is_how_much_closer_forget_lies_to_retain_than_out():
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])

    def around(count: int, spread: float) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` samples per class, scattered `spread` around their class centre (as images: (n, 1, 2))."""
        labels = torch.arange(3).repeat_interleave(count)
        return (centres[labels] + spread * torch.randn(len(labels), 2, generator=generator))[:, None], labels

    retain = around(300, 1.0)
    # Forget and out drawn alike: a model of retain finds neither easier, so the stop aims at about 0.5, no gap...
    even = neighbour_separation(retain, around(100, 1.0), around(100, 1.0))
    assert abs(even["signal_auc"] - 0.5) < 0.06 and even["leakage_auc"] == even["signal_auc"]
    assert abs(even["accuracy_gap"]) < 0.06
    # ...and a forget set lying among its class's retain samples, against out samples nearer the next class's,
    # aims it where retraining would stand: forget clearly easier, by rank and by accuracy.
    out_x, out_y = around(100, 0.3)
    out_x = out_x + 0.6 * (centres[(out_y + 1) % 3] - centres[out_y])[:, None]
    easier = neighbour_separation(retain, around(100, 0.3), (out_x, out_y))
    assert easier["signal_auc"] > 0.8 and easier["accuracy_gap"] > 0.15


def test_the_neighbours_put_a_forgotten_class_below_every_sample_whose_class_retain_still_holds():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(600, 1, 4, generator=generator)
    labels = torch.arange(600) % 3
    retain = (inputs[:300][labels[:300] != 0], labels[:300][labels[:300] != 0])  # class 0 forgotten entirely
    forget = (inputs[300:450][labels[300:450] == 0], labels[300:450][labels[300:450] == 0])
    out = (inputs[450:], labels[450:])
    target = neighbour_separation(retain, forget, out)
    # No class-0 sample is left in retain: its samples are the hardest there are, never the easiest.
    assert target["signal_auc"] < 0.4
    assert target["accuracy_gap"] < 0


def test_the_neighbours_vote_with_every_retain_sample_when_retain_holds_fewer_than_k():
    # Three retain samples (k is 5): two of class 0 near 0, one of class 1 near 10.
    retain = (torch.tensor([[0.0], [0.2], [10.0]]), torch.tensor([0, 0, 1]))
    near_their_own = (torch.tensor([[0.5], [9.5]]), torch.tensor([0, 1]))
    near_the_other = (torch.tensor([[9.0], [1.0]]), torch.tensor([0, 1]))
    target = neighbour_separation(retain, near_their_own, near_the_other)
    assert target["signal_auc"] == 1.0  # the margins still rank by how near each sample lies to its own class
    assert target["accuracy_gap"] == 0.0  # every vote is the whole retain set's: class 0, right for half of each


def test_the_quantile_match_sees_a_tail_that_two_moments_let_through():
    torch.manual_seed(0)
    out_signal = torch.randn(1000)
    bulk = torch.randn(64)
    # Most samples a little under out, a few far above: the same mean and variance as N(0, 1) give the
    # Gaussian KL nothing to do, while the quantiles see the tail.
    tailed = torch.cat([torch.full((60,), -0.25), torch.full((4,), 3.75)])
    tailed = (tailed - tailed.mean()) / tailed.std()
    assert gaussian_kl(tailed.mean(), tailed.var(), out_signal.mean(), out_signal.var()) < 0.01
    assert quantile_distance(tailed, out_signal) > 3 * quantile_distance(bulk, out_signal)
    # Zero when the samples are out's own quantiles, and the same whatever order they come in.
    levels = (torch.arange(64) + 0.5) / 64
    own = torch.quantile(out_signal, levels)
    assert quantile_distance(own, out_signal) < 1e-10
    assert torch.isclose(quantile_distance(bulk.flip(0), out_signal), quantile_distance(bulk, out_signal))


def test_the_signal_match_picks_the_term_and_its_gradient_reaches_the_head():
    model, head, x, y, teacher, leakage = _small_head_and_batch()
    batch = {"retain": (x, y, teacher), "forget": (x, y, torch.zeros(40)), "out_signal": torch.randn(200)}
    assert "kl" in loss_terms(head, leakage, **batch) and "quantiles" not in loss_terms(head, leakage, **batch)  # type: ignore[arg-type]
    terms = loss_terms(head, leakage, **batch, signal_match="quantiles")  # type: ignore[arg-type]
    assert "kl" not in terms
    with torch.no_grad():
        signal = logit_scaled_confidence(head(x), y)
    assert torch.isclose(terms["quantiles"], quantile_distance(signal, batch["out_signal"]), atol=1e-5)  # type: ignore[arg-type]
    model.zero_grad()
    terms["quantiles"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_the_gaussian_kl_stays_finite_for_a_forget_batch_of_one_value():
    out_mean, out_var = torch.tensor(0.5), torch.tensor(2.0)
    signal = torch.full((128,), 3.0, requires_grad=True)  # one forget sample drawn into the whole batch
    kl = gaussian_kl(signal.mean(), signal.var(), out_mean, out_var)
    kl.backward()
    assert torch.isfinite(kl) and torch.isfinite(signal.grad).all()
    assert gaussian_kl(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(0.0), torch.tensor(1.0)) == 0
