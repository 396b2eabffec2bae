"""ReMI: fine-tune with retain-set fidelity + a membership-inference loss + a Gaussian KL term.

Our reconstruction of Sula et al. (arXiv 2407.00866); see DESIGN.md section 2 and the README.
Per step, on one batch each of retain, forget and out samples:

    loss = lambda_ce * CE(f(x_r), y_r) + lambda_distill * KL(f0(x_r) || f(x_r))     # fidelity
         + lambda_mi * mean softplus(A(f(x_f)))      # frozen attack: forget looks like non-member
         + lambda_kl * KL(N(mu_f, var_f) || N(mu_o, var_o))   # forget signal matches out signal

The signal is the logit-scaled true-class confidence. The out statistics are detached: they are the
target the forget distribution is moved to, not something to move. Training stops once the attack
and the signal no longer tell forget from out (AUC within `auc_tolerance` of `target_auc`).
"""

import copy

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

from remi.signals import gaussian_kl, logit_scaled_confidence
from remi.unlearning.base import Samples, UnlearningTask

CHECK_SAMPLES = 1000  # forget and out samples scored at each stopping check


def _auc(member: torch.Tensor, nonmember: torch.Tensor) -> float:
    truth = np.r_[np.ones(len(member)), np.zeros(len(nonmember))]
    return float(roc_auc_score(truth, torch.cat([member, nonmember]).numpy()))


@torch.no_grad()
def distinguishability(model: nn.Module, task: UnlearningTask, forget: Samples,
                       out: Samples) -> dict[str, float]:
    """How well the signal and the frozen attack separate forget from out under `model`."""
    model.eval()
    forget_logits, out_logits = model(forget[0]), model(out[0])
    model.train()
    return {
        "signal_auc": _auc(logit_scaled_confidence(forget_logits, forget[1]),
                           logit_scaled_confidence(out_logits, out[1])),
        "attack_auc": _auc(task.attack(forget_logits, forget[1]), task.attack(out_logits, out[1])),
    }


def _batch(samples: Samples, batch_size: int, generator: torch.Generator) -> Samples:
    picked = torch.randint(len(samples[1]), (batch_size,), generator=generator)
    return samples[0][picked], samples[1][picked]


def remi(task: UnlearningTask) -> nn.Module:
    p = task.method_params
    generator = torch.Generator().manual_seed(p["seed"])
    teacher = task.original.eval()
    model = copy.deepcopy(task.original).train()
    optimizer = torch.optim.Adam(_trainable(model, p["trainable_layers"]), lr=p["lr"])
    check_forget = _subsample(task.forget, generator)
    check_out = _subsample(task.out, generator)
    for step in range(p["max_steps"] + 1):
        if step % p["check_every"] == 0 or step == p["max_steps"]:
            gaps = distinguishability(model, task, check_forget, check_out)
            task.log(step, gaps)
            if max(abs(auc - p["target_auc"]) for auc in gaps.values()) <= p["auc_tolerance"]:
                break
        if step == p["max_steps"]:
            break
        terms = _loss_terms(model, teacher, task, generator)
        loss = (p["lambda_ce"] * terms["ce"] + p["lambda_distill"] * terms["distill"]
                + p["lambda_mi"] * terms["mi"] + p["lambda_kl"] * terms["kl"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        task.log(step, {f"loss_{name}": value.item() for name, value in terms.items()})
    return model.eval()


def _trainable(model: nn.Module, last_layers: int) -> list[nn.Parameter]:
    """Freeze all but the last `last_layers` layers with weights (0: train all).

    Membership leaks mostly through the classifier head; leaving the feature extractor alone keeps
    test accuracy and skips the convolutions' backward pass.
    """
    layers = [m for m in model.modules() if list(m.parameters(recurse=False))]
    chosen = layers[-last_layers:] if last_layers else layers
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    trainable = [p for layer in chosen for p in layer.parameters(recurse=False)]
    for parameter in trainable:
        parameter.requires_grad_(True)
    return trainable


def _subsample(samples: Samples, generator: torch.Generator) -> Samples:
    picked = torch.randperm(len(samples[1]), generator=generator)[:CHECK_SAMPLES]
    return samples[0][picked], samples[1][picked]


def _loss_terms(model: nn.Module, teacher: nn.Module, task: UnlearningTask,
                generator: torch.Generator) -> dict[str, torch.Tensor]:
    batch_size = task.method_params["batch_size"]
    retain_x, retain_y = _batch(task.retain, batch_size, generator)
    forget_x, forget_y = _batch(task.forget, batch_size, generator)
    out_x, out_y = _batch(task.out, batch_size, generator)
    # One forward pass for retain and forget: a bigger batch is cheaper than two small ones.
    retain_logits, forget_logits = model(torch.cat([retain_x, forget_x])).split(batch_size)
    with torch.no_grad():
        teacher_log_probs = F.log_softmax(teacher(retain_x), dim=1)
        out_signal = logit_scaled_confidence(model(out_x), out_y)
    forget_signal = logit_scaled_confidence(forget_logits, forget_y)
    return {
        "ce": F.cross_entropy(retain_logits, retain_y),
        "distill": F.kl_div(F.log_softmax(retain_logits, dim=1), teacher_log_probs,
                            log_target=True, reduction="batchmean"),
        "mi": F.softplus(task.attack(forget_logits, forget_y)).mean(),
        "kl": gaussian_kl(forget_signal.mean(), forget_signal.var(),
                          out_signal.mean(), out_signal.var()),
    }
