import copy

import torch

from remi.attacks import AttackModel
from remi.nets import small_cnn
from remi.signals import gaussian_kl, logit_scaled_confidence
from remi.unlearning.remi import loss_terms, split_head


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


def test_remi_loss_gradients_reach_every_weight_of_the_target():
    torch.manual_seed(0)
    model = small_cnn((1, 28, 28), 10, 4, 8, 16)
    _, head = split_head(model, 0)
    attack = AttackModel(num_features=16, hidden_units=8).requires_grad_(False)
    x, y = torch.randn(40, 1, 28, 28), torch.randint(0, 10, (40,))
    teacher = torch.log_softmax(copy.deepcopy(head)(x), dim=1).detach()
    out_signal = logit_scaled_confidence(head(torch.randn(40, 1, 28, 28)), y).detach()
    terms = loss_terms(head, attack, retain=(x, y, teacher), forget=(x, y), out_signal=out_signal)
    for name in ("mi", "kl"):  # the two unlearning terms, each on its own
        model.zero_grad()
        terms[name].backward(retain_graph=True)
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()), name


def test_split_head_freezes_all_but_the_last_layers():
    model = small_cnn((1, 28, 28), 10, 4, 8, 16)
    frozen, head = split_head(model, 2)
    assert all(not p.requires_grad for p in frozen.parameters())
    assert sum(isinstance(layer, torch.nn.Linear) for layer in head) == 2
    assert all(p.requires_grad for p in head.parameters())
