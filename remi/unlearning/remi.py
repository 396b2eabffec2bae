"""ReMI: fine-tune with retain-set fidelity + a membership-inference loss + a Gaussian KL term.

Our reconstruction of Sula et al. (arXiv 2407.00866); see docs/design.md, "The method".
Per step, on one batch each of retain and forget samples (and, with the anchor, of out samples):

    loss = lambda_ce * CE(f(x_r), y_r) + lambda_distill * KL(f0(x_r) || f(x_r))     # fidelity
         + lambda_mi * mean softplus(A(f(x_f)))      # leakage estimator: forget looks like non-member
         + lambda_kl * KL(N(mu_f, var_f) || N(mu_o, var_o))   # forget signal matches out signal (or,
                                                       #   `signal_match: quantiles`, sorted s_f ~ out's quantiles)
         + lambda_unseen * KL(g_k(x_f) || f(x_f))    # forget predictions match an unseen model's (all
                                                       #   classes, or the true one against the rest)
         + lambda_anchor * mean (c(x) - c0(x))^2 over the retain batch and an out batch   # confidence stays

A is the leakage estimator named by `remi.estimator` (leakage_estimators.py: the shadow attack model, a
confidence threshold, or per-class Gaussian scores). The signal s is the logit-scaled true-class
confidence, measured from a reference point that `remi.signal_reference` picks: zero (`population`, the
paper's reading: forget's confidences as a whole should look like out's), or each sample's mean
confidence under the shadows (`shadows`: they never trained on it, so s is how much more confident the
model is on x than an unseen model would be, which is what per-example attacks such as LiRA test; the
default since the 2026-12-04 ablation, docs/method.md). (mu_o, var_o) are detached: they are the
target the forget distribution moves to, not something to move. They are refreshed at every
stopping check from CHECK_SAMPLES out samples: a better estimate than one batch, and cheaper.
`remi.signal_match: quantiles` compares the batch's sorted signals with out's quantiles at the same levels
instead of two moments: the most memorised forget samples form a tail that a Gaussian's mean and variance
let through, and per-example attacks (online LiRA) read that tail (2026-12-06; the letter profile's choice, at a
smaller weight; docs/method.md).

g_k is one reference model (a shadow, which never trained on x_f), drawn at random for each forget
sample once per run: the MI and KL terms lower forget's confidence as a whole but leave its
predictions right where retraining gets some wrong; a single unseen model's output is what retraining
would give, mistakes and sharpness included (an average over the shadows would be smoother and more
accurate than any one model). Added 2026-12-04, after the per-example reference; docs/method.md.
`remi.unseen_match: confidence` compares only the true class's probability against the rest's, so the
shadow's confusions among the wrong classes are not copied (2026-12-06; the MNIST-5k profile's choice).
`remi.unseen_raise` raises the drawn shadow's true-class logit by that fraction of how much surer the target
is than the shadows on out samples, which neither trained on: a shadow may train on fewer samples than the
target, and a retrained model is about as sure of unseen data as the target is (2026-12-06; docs/method.md).

The anchor holds the logit-scaled confidence c (s without its reference point) on retain and out
samples where the original model f0 had it: a retrained model is as confident as the original on
both, and the cheapest way for the other terms to lower forget's confidence is to lower everyone's
(the shared head's scale). Per-sample attacks within one model do not see that global drop, but
U-LiRA does (stage ulira: -3 to -4 on every split without the anchor). The distillation term cannot
hold it: its KL is flat where p_y is near 1. Its out samples are those the stopping checks do not
score, or, when the checks take them all (small profiles), the same ones. Added 2026-12-04, after
the unseen-model term; docs/method.md.

Stop rule: the estimator and the signal rank forget no higher than out (AUC at most `target_auc` +
`auc_tolerance`) and forget accuracy is at most `accuracy_tolerance` above out accuracy; or both AUCs
are that low and one is already below `target_auc` - `auc_tolerance` (an overshoot that more steps
would only deepen); or the step budget runs out. `remi.stop_target` moves the targets from `target_auc` and
no accuracy gap to what the shadows show on the same check samples (`unseen_separation`) or what a
nearest-neighbour model of the retain set shows on them (neighbour_target.py).

Only the last `trainable_layers` layers are fine-tuned: membership leaks mostly through the head,
and a frozen feature extractor keeps test accuracy. Its outputs are then computed once per sample
instead of once per step, which makes ReMI a few percent of retraining's cost.
"""

import copy
import functools
import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from remi.attacks.roc import rank_auc
from remi.attacks.signals import gaussian_kl, logit_scaled_confidence, quantile_distance
from remi.errors import ParamsError
from remi.networks.training import accuracy, adam, predict_logits
from remi.params_schema import Remi
from remi.unlearning.base import DeferredLog, Samples, UnlearningTask, draw_plan, subsample
from remi.unlearning.leakage_estimators import ESTIMATORS, LeakageScore
from remi.unlearning.neighbour_target import neighbour_separation

CHECK_SAMPLES = 1000  # forget and out samples scored at each stopping check
Referenced = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (features, labels, expected signal)
Anchored = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (features, labels, the original model's confidence)


@dataclass(frozen=True)
class CheckSamples:
    """The stopping checks' forget samples followed by their out samples, (features, labels, expected
    signal) each, held as one set so each check scores both in one pass: ReMI checks every few steps, and
    on small networks each pass's fixed cost is a good part of a check's (letter's 33 checks: 0.160 s
    -> 0.119 s of one ReMI call under cProfile, BENCHMARKS.md)."""

    features: torch.Tensor
    labels: torch.Tensor
    expected: torch.Tensor
    forget_count: int

    @classmethod
    def of(cls, forget: Referenced, out: Referenced) -> "CheckSamples":
        features, labels, expected = (torch.cat([ours, theirs]) for ours, theirs in zip(forget, out, strict=True))
        return cls(features, labels, expected, forget_count=len(forget[1]))

    def split(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample `values` (in the set's order) as (forget's, out's)."""
        return values[:self.forget_count], values[self.forget_count:]


def remi(task: UnlearningTask) -> nn.Module:
    p = task.params(Remi)
    generator = torch.Generator().manual_seed(p.seed)
    model = copy.deepcopy(task.original).eval()
    frozen, head = split_head(model, p.trainable_layers)
    check_references(task, p)
    per_example, aimed_by_shadows = p.signal_reference == "shadows", p.stop_target == "shadows"
    with torch.no_grad():
        retain = frozen_features(frozen, task.retain[0]), task.retain[1]
        check_out_ids, spare_out_ids = torch.randperm(len(task.out[1]), generator=generator).split(
            [min(CHECK_SAMPLES, len(task.out[1])), max(len(task.out[1]) - CHECK_SAMPLES, 0)])
        anchor_out_ids = spare_out_ids if len(spare_out_ids) else check_out_ids
        (forget_x, forget_y), (check_x, check_y) = task.forget, _pick(task.out, check_out_ids)
        # One pass of the references over forget serves the reference point, the unseen teacher and the
        # stop target alike.
        raised_teacher = p.lambda_unseen > 0 and p.unseen_raise > 0
        masks = task.references_unseen
        forget_unseen, check_out_unseen = (None, None) if masks is None else (masks.forget, masks.out[:, check_out_ids])
        forget_references = (reference_logits(task, forget_x)
                             if per_example or p.lambda_unseen > 0 or aimed_by_shadows else None)
        check_out_references = (reference_logits(task, check_x)
                                if per_example or aimed_by_shadows or raised_teacher else None)
        forget = (frozen_features(frozen, forget_x), forget_y,
                  expected_signal(forget_references if per_example else None, forget_y, forget_unseen))
        check_out = (frozen_features(frozen, check_x), check_y,
                     expected_signal(check_out_references if per_example else None, check_y, check_out_unseen))
        check_out_logits = head(check_out[0])
        raise_by = (p.unseen_raise * strength_gap(check_out_logits, check_out_references, check_y, check_out_unseen)
                    if raised_teacher and check_out_references is not None else 0.0)
        unseen_log_probs = (unseen_prediction(forget_references, forget_y, generator, raise_by, forget_unseen)
                            .to(forget_y.device) if forget_references is not None and p.lambda_unseen > 0 else None)
        teacher_log_probs = F.log_softmax(head(retain[0]), dim=1)  # the original model's retain outputs
        anchor_out = (anchor_samples(frozen, head, _pick(task.out, anchor_out_ids)) if p.lambda_anchor > 0
                      else None)
        leakage = ESTIMATORS[p.estimator](task, (check_out_logits, check_out[1]))
    # The samples' positions ride along, so the stop target can be measured on the same samples.
    *checked, check_positions = subsample((*forget, torch.arange(len(forget_y), device=forget_y.device)),
                                          CHECK_SAMPLES, generator)
    checks = CheckSamples.of((checked[0], checked[1], checked[2]), check_out)
    if forget_references is not None and check_out_references is not None and aimed_by_shadows:
        targets = unseen_separation(forget_references[:, check_positions.cpu()], check_out_references, checks,
                                    leakage)
    elif p.stop_target == "neighbours":
        targets = neighbour_separation(task.retain, (forget_x[check_positions], forget_y[check_positions]),
                                       (check_x, check_y))
    else:
        targets = fixed_targets(p)
    if p.stop_target != "fixed":
        task.log(0, {f"target_{key}": value for key, value in targets.items()})
    if raise_by:
        task.log(0, {"unseen_teacher_raise": raise_by})  # in logit-scaled confidence
    optimizer = adam(head.parameters(), lr=p.lr)
    weights = {"ce": p.lambda_ce, "distill": p.lambda_distill, "mi": p.lambda_mi, "kl": p.lambda_kl,
               "quantiles": p.lambda_kl, "unseen": p.lambda_unseen, "anchor": p.lambda_anchor}
    # Every step's batches drawn now and copied to the device once (draw_plan says why).
    retain_batches, forget_batches, *anchor_batches = draw_plan(
        [(0, len(retain[1])), (0, len(forget[1])), *([] if anchor_out is None else [(0, len(anchor_out[1]))])],
        p.batch_size, p.max_steps, generator, retain[1].device)
    losses = DeferredLog(task)
    for step in range(p.max_steps + 1):
        if step % p.check_every == 0 or step == p.max_steps:
            separation, out_signal = distinguishability(head, leakage, checks)
            losses.flush()  # the check has waited for the device already; every exit from the loop passes here
            task.log(step, separation)
            if looks_unseen(separation, p, targets):
                break
        if step == p.max_steps:
            break
        retain_batch, forget_batch = retain_batches[step], forget_batches[step]
        anchor = None if anchor_out is None else _rows(anchor_out, anchor_batches[0][step])
        terms = loss_terms(head, leakage,
                           retain=(retain[0][retain_batch], retain[1][retain_batch],
                                   teacher_log_probs[retain_batch]),
                           forget=(forget[0][forget_batch], forget[1][forget_batch], forget[2][forget_batch]),
                           out_signal=out_signal,
                           unseen_log_probs=None if unseen_log_probs is None else unseen_log_probs[forget_batch],
                           unseen_match=p.unseen_match, signal_match=p.signal_match, anchor=anchor)
        loss = functools.reduce(operator.add, (weights[name] * term for name, term in terms.items()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.add(step, {f"loss_{name}": value for name, value in terms.items()})
    return model.requires_grad_(True).eval()


def looks_unseen(separation: dict[str, float], p: Remi, targets: dict[str, float]) -> bool:
    """Stop rule: forget looks no more member-like than out, by both AUCs and by accuracy, than `targets`
    say it should; or both AUCs are low enough and one has already gone past its target by more than the
    tolerance.

    The AUCs approach their targets from above, and going on past them makes forget look *less*
    member-like than unseen data, which is a signal of its own (over-suppression). With few forget
    samples the accuracy gap is noisy (100 samples: about +-0.04) and can stay above its tolerance while
    the AUCs keep falling; once one AUC is past the target, more steps only deepen the overshoot.
    """
    keys = ("signal_auc", "leakage_auc")
    if any(separation[key] > targets[key] + p.auc_tolerance for key in keys):
        return False
    overshot = any(separation[key] < targets[key] - p.auc_tolerance for key in keys)
    return overshot or separation["accuracy_gap"] <= targets["accuracy_gap"] + p.accuracy_tolerance


def fixed_targets(p: Remi) -> dict[str, float]:
    """`remi.stop_target: fixed`: both AUCs aim at target_auc, and forget at out's accuracy."""
    return {"signal_auc": p.target_auc, "leakage_auc": p.target_auc, "accuracy_gap": 0.0}


def unseen_separation(forget_references: torch.Tensor, out_references: torch.Tensor, checks: CheckSamples,
                      leakage: LeakageScore) -> dict[str, float]:
    """`remi.stop_target: shadows`: the separation of the same check samples under the reference models,
    which never trained on forget or out, averaged over them. A retrained model has not seen them either,
    yet a given forget set may be a little easier than out by chance (its neighbours in retain, its
    classes): aiming at 0.5 would push that away too, which retraining would not."""
    device = checks.labels.device  # the reference logits are on the CPU, the samples and the attack may not be
    separations = [separation_of(torch.cat([forget_logits, out_logits]).to(device), checks, leakage)[0]
                   for forget_logits, out_logits in zip(forget_references, out_references, strict=True)]
    return {key: sum(s[key] for s in separations) / len(separations) for key in separations[0]}


def check_references(task: UnlearningTask, p: Remi) -> None:
    """Refuse settings that need reference models when the task has none, or references that never trained
    on any forget or out sample when the task's did on some."""
    if task.references_unseen is not None and p.stop_target == "shadows":
        raise ParamsError("remi.stop_target = shadows scores the check samples under each reference model as a "
                          "whole, so it needs references that never trained on any of them (the shadows); with "
                          "the online shadows as references, set it to fixed.")
    if task.references:
        return
    if p.stop_target == "shadows":
        raise ParamsError("remi.stop_target = shadows needs reference models (the shadows, models/shadows); "
                          "set it to fixed to aim at remi.target_auc.")
    if p.signal_reference == "shadows":
        raise ParamsError("remi.signal_reference = shadows needs reference models (the shadows, models/shadows).")
    if p.lambda_unseen > 0:
        raise ParamsError("remi.lambda_unseen > 0 needs reference models (the shadows, models/shadows); "
                          "set it to 0 to run ReMI without them.")


def reference_logits(task: UnlearningTask, inputs: torch.Tensor) -> torch.Tensor:
    """(K, n, C): the logits of the task's K reference models on `inputs`, on the CPU."""
    return torch.stack([predict_logits(model, inputs) for model in task.references])


def expected_signal(references: torch.Tensor | None, labels: torch.Tensor, unseen: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """What each sample's signal is measured from. Without reference logits (`remi.signal_reference:
    population`): zero, so the signal is the raw confidence and the KL term matches forget's distribution to
    out's as a whole. With the reference models' (K, n, C) logits (`shadows`): the sample's mean signal under
    them, which never trained on it, so the term matches each forget sample's excess over what an unseen
    model gives it to out's, which is what per-example attacks (LiRA) measure. `unseen` (K, n), when the
    references trained on some of the samples: the mean over those that never trained on each."""
    if references is None:
        return torch.zeros(len(labels), device=labels.device)
    signals = torch.stack([logit_scaled_confidence(logits, labels.cpu()) for logits in references])
    if unseen is None:
        return signals.mean(0).to(labels.device)
    return ((signals * unseen).sum(0) / unseen.sum(0)).to(labels.device)


def unseen_prediction(references: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
                      raise_by: float = 0.0, unseen: torch.Tensor | None = None) -> torch.Tensor:
    """Log-probabilities an unseen model gives each sample, from the reference models' (K, n, C) logits on
    them: for each sample one reference model, drawn at random (see the module docstring; with `unseen` (K, n),
    among those that never trained on it), its true-class logit raised by `raise_by` (which raises its
    logit-scaled confidence by as much)."""
    models, samples = references.shape[:2]
    drawn = (torch.randint(models, (samples,), generator=generator) if unseen is None
             else torch.multinomial(unseen.T.double(), 1, generator=generator).squeeze(1))
    logits = references[drawn, torch.arange(samples)]  # indexed by tensors: a copy, safe to raise in place
    if raise_by:
        logits[torch.arange(samples), labels.cpu()] += raise_by
    return logits.log_softmax(1)


def strength_gap(target_logits: torch.Tensor, references: torch.Tensor, labels: torch.Tensor,
                 unseen: torch.Tensor | None = None) -> float:
    """How much surer the target is of the true class than a reference model, on samples neither trained on:
    the mean of the target's logit-scaled confidence less the reference models' mean (`remi.unseen_raise`
    raises the unseen teacher by a fraction of it). Shadows that train on fewer samples than the target are less
    sure of unseen data than a model retrained on the retain set would be."""
    return float((logit_scaled_confidence(target_logits, labels) - expected_signal(references, labels, unseen)).mean())


def unseen_divergence(student_log_probs: torch.Tensor, teacher_log_probs: torch.Tensor, labels: torch.Tensor,
                      match: str) -> torch.Tensor:
    """KL(unseen model || ReMI's model) per forget sample, averaged. `distribution`: over all classes, so
    ReMI copies the unseen model's confusions among the wrong classes too. `confidence`: over the true
    class against all the others together, so only how sure the unseen model is of the right answer,
    which is what membership attacks read, is copied."""
    if match == "confidence":
        student_log_probs, teacher_log_probs = (true_class_against_rest(log_probs, labels)
                                                for log_probs in (student_log_probs, teacher_log_probs))
    return F.kl_div(student_log_probs, teacher_log_probs, log_target=True, reduction="batchmean")


def true_class_against_rest(log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(n, 2) log-probabilities of each sample's true class and of the other classes together."""
    true_class = log_probs.gather(1, labels[:, None])
    rest = log_probs.scatter(1, labels[:, None], float("-inf")).logsumexp(1, keepdim=True)
    return torch.cat([true_class, rest], dim=1)


def split_head(model: nn.Module, last_layers: int) -> tuple[nn.Module, nn.Module]:
    """(frozen prefix, trainable head) sharing `model`'s modules; the head holds the last
    `last_layers` layers with weights (0: the whole model is the head)."""
    if last_layers == 0:
        return nn.Identity(), model
    if not isinstance(model, nn.Sequential):
        raise ParamsError("remi.trainable_layers > 0 needs an nn.Sequential network; set it to 0.")
    weighted = [i for i, layer in enumerate(model) if list(layer.parameters())]
    if last_layers > len(weighted):
        raise ParamsError(f"remi.trainable_layers = {last_layers}, but the network has "
                          f"{len(weighted)} layers with weights.")
    start = weighted[-last_layers]
    frozen, head = model[:start].requires_grad_(False), model[start:]
    return frozen, head


def anchor_samples(frozen: nn.Module, head: nn.Module, out: Samples) -> Anchored:
    """Out samples for the anchor term: (features, labels, the original model's logit-scaled confidence)."""
    features = frozen_features(frozen, out[0])
    return features, out[1], logit_scaled_confidence(head(features), out[1])


def _rows(samples: Anchored, rows: torch.Tensor) -> Anchored:
    """The anchor samples at `rows` (one step's batch)."""
    features, labels, confidence = samples
    return features[rows], labels[rows], confidence[rows]


def _pick(samples: Samples, indices: torch.Tensor) -> Samples:
    """The samples at `indices` (inputs and labels may sit on different devices)."""
    return samples[0][indices.to(samples[0].device)], samples[1][indices.to(samples[1].device)]


def frozen_features(frozen: nn.Module, inputs: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """The frozen prefix's outputs on `inputs`, a chunk at a time (a whole split's convolution maps at once can take
    gigabytes)."""
    return torch.cat([frozen(part) for part in inputs.split(chunk)])


@torch.no_grad()
def distinguishability(head: nn.Module, leakage: LeakageScore,
                       checks: CheckSamples) -> tuple[dict[str, float], torch.Tensor]:
    """How well the signal and the leakage estimator separate forget from out under the current head,
    how much more accurate the head is on forget than on out; and the out signal itself."""
    return separation_of(head(checks.features), checks, leakage)


def separation_of(logits: torch.Tensor, checks: CheckSamples,
                  leakage: LeakageScore) -> tuple[dict[str, float], torch.Tensor]:
    """A model's separation of forget from out, given its logits on the check samples (see
    `distinguishability`)."""
    forget_signal, out_signal = checks.split(logit_scaled_confidence(logits, checks.labels) - checks.expected)
    (forget_logits, out_logits), (forget_labels, out_labels) = checks.split(logits), checks.split(checks.labels)
    separation = {
        "accuracy_gap": accuracy(forget_logits, forget_labels) - accuracy(out_logits, out_labels),
        "signal_auc": rank_auc(forget_signal, out_signal),
        "leakage_auc": rank_auc(*checks.split(leakage(logits, checks.labels))),
    }
    return separation, out_signal


def loss_terms(head: nn.Module, leakage: LeakageScore,
               retain: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
               forget: Referenced, out_signal: torch.Tensor, unseen_log_probs: torch.Tensor | None = None,
               unseen_match: str = "distribution", signal_match: str = "gaussian",
               anchor: Anchored | None = None) -> dict[str, torch.Tensor]:
    """The loss terms on one batch of retain (features, labels, original log-probs) and forget
    (features, labels, expected signal); `out_signal` is the target distribution, from the last check, which
    the forget signals match as `signal_match` says (term "kl": two Gaussians; "quantiles": sorted);
    with `unseen_log_probs` (an unseen model's outputs on the forget batch), the term that matches them as
    `unseen_match` says (`unseen_divergence`); with `anchor` (out features, labels, the original's
    confidence), the anchor term on it and the retain batch."""
    retain_x, retain_y, teacher_log_probs = retain
    forget_x, forget_y, forget_expected = forget
    anchor_x = retain_x[:0] if anchor is None else anchor[0]
    # One forward pass for all three batches: a bigger batch is cheaper than several small ones.
    retain_logits, forget_logits, anchor_logits = head(torch.cat([retain_x, forget_x, anchor_x])).split(
        [len(retain_x), len(forget_x), len(anchor_x)])
    forget_signal = logit_scaled_confidence(forget_logits, forget_y) - forget_expected
    terms = {
        "ce": F.cross_entropy(retain_logits, retain_y),
        "distill": F.kl_div(F.log_softmax(retain_logits, dim=1), teacher_log_probs,
                            log_target=True, reduction="batchmean"),
        "mi": F.softplus(leakage(forget_logits, forget_y)).mean(),
    }
    if signal_match == "quantiles":
        terms["quantiles"] = quantile_distance(forget_signal, out_signal)
    else:
        terms["kl"] = gaussian_kl(forget_signal.mean(), forget_signal.var(), out_signal.mean(), out_signal.var())
    if unseen_log_probs is not None:
        terms["unseen"] = unseen_divergence(F.log_softmax(forget_logits, dim=1), unseen_log_probs, forget_y,
                                            unseen_match)
    if anchor is not None:
        # The confidence is shift-invariant in the logits, so the teacher's log-probs give the original's.
        changes = torch.cat([
            logit_scaled_confidence(retain_logits, retain_y) - logit_scaled_confidence(teacher_log_probs, retain_y),
            logit_scaled_confidence(anchor_logits, anchor[1]) - anchor[2]])
        terms["anchor"] = changes.pow(2).mean()
    return terms
