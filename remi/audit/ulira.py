"""U-LiRA on the pipeline's artifacts: can an attacker who unlearns reference models himself tell the
unlearned model from the retrained one, sample by sample? (stage `ulira`, before the audit, which gates
its AUC: `acceptance.max_ulira_auc`)

For each unlearning method the pipeline ran (retraining aside): every online shadow unlearns, with that
method and its params, the forget samples it trained on (its retain set: the rest of what it trained
on; its unseen samples: the pool samples it did not train on), seed = the method's seed + the shadow's
index. Those and the shadows themselves are U-LiRA's reference models (remi/attacks/ulira.py). Then:

- `auc`: U-LiRA's scores of the method's model on the forget samples against the retrained model's
  scores on the same samples: 0.5 = the attack cannot tell which of the two models was unlearned.
- `confidence_shift`: the mean difference of the method's logit-scaled confidence to the retrained
  model's, on the forget, retain and test samples. The same shift on every split is a change of the
  model's overall confidence (its calibration), which U-LiRA's references reproduce and so detect.
- `held_out`: the attack's own test where the truth is known, each reference model held out in turn
  (unlearned on its trained-on samples vs never trained on the others; Hayes et al.'s setting): how
  much power the attack has against this method at all.

Not a check on the untouched target: a model that unlearned nothing is neither of U-LiRA's two
hypotheses, and far above both Gaussians its ratio ranks by their spreads, not by membership.

The reference models unlearn from the online shadows, which trained on the original data: with
sequential unlearning the method's model unlearned the newest requests from a release, while its
references unlearn the whole forget set at once, so the AUC compares like with like only for a
one-shot run (the pipeline's audit, in turn, skips samples the starting model already honours).
"""

import time
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from remi.attacks.roc import fpr_label, membership_metrics
from remi.attacks.signals import logit_scaled_confidence
from remi.attacks.ulira import UnlearnedReferences, held_out_scores, ulira_scores
from remi.catalog import REFERENCE
from remi.data.datasets import Dataset
from remi.data.splits import load_split, retain_ids
from remi.networks.checkpoints import load_model, load_shadow_outputs
from remi.networks.training import predict_logits
from remi.params_schema import Params
from remi.pipeline.layout import ONLINE_SHADOWS_DIR, shadow_dir, split_path, unlearned_dir
from remi.pipeline.tasks import load_task, samples_on
from remi.runtime.device import hardware
from remi.unlearning import UnlearningTask, unlearn
from remi.unlearning.base import Samples

Results = dict[str, dict[str, Any]]  # method -> model, held_out, confidence_shift, references, seconds


def ulira_per_method(params: Params, dataset: Dataset, device: torch.device) -> Results:
    """U-LiRA against the retrained model for every unlearning method but retraining."""
    count = params.online_shadows.count  # at least ULIRA_MIN_REFERENCES: params_schema checks it
    forget_ids = load_split(split_path("forget"))
    forget = dataset.subset(forget_ids)
    target_train = load_split(split_path("target_train"))
    splits = {"forget": forget, "retain": dataset.subset(retain_ids(target_train, forget_ids)),
              "test": dataset.subset(load_split(split_path("test")))}
    retrained_model = load_model(unlearned_dir(REFERENCE), device)
    retrained = {name: confidence(retrained_model, samples) for name, samples in splits.items()}
    low_fprs = params.audit.low_fprs
    results = {}
    for method in (m for m in params.unlearn.methods if m != REFERENCE):
        started = time.perf_counter()
        references = unlearned_references(load_task(params, dataset, method, device), method, dataset, forget_ids,
                                          count, device)
        unlearned_model = load_model(unlearned_dir(method), device)
        audited = {name: confidence(unlearned_model, samples) for name, samples in splits.items()}
        shift = {name: float((audited[name] - retrained[name]).mean()) for name in splits}
        model = versus_retrained(audited["forget"], retrained["forget"], references, low_fprs)
        held_out = membership_metrics(*held_out_scores(references), low_fprs)
        results[method] = {"model": model, "held_out": held_out, "confidence_shift": shift, "references": count,
                           "seconds": time.perf_counter() - started}
    return results


def unlearned_references(task: UnlearningTask, method: str, dataset: Dataset, forget_ids: torch.Tensor,
                         count: int, device: torch.device) -> UnlearnedReferences:
    """Each online shadow before and after unlearning, with `method`, the forget samples it trained on;
    `task` (the pipeline's own) gives everything else the method reads (attack, references, params)."""
    forget = dataset.subset(forget_ids)
    unlearned, original, trained_on = [], [], []
    for index in range(count):
        directory = shadow_dir(index, ONLINE_SHADOWS_DIR)
        shadow, outputs = load_model(directory, device), load_shadow_outputs(directory)
        members = outputs["sample_ids"][outputs["is_member"]]
        outsiders = outputs["sample_ids"][~outputs["is_member"]]
        was_member = torch.isin(forget_ids, members)
        seed = task.method_params.seed + index  # type: ignore[attr-defined]  # every method's params have one
        shadow_task = replace(task, original=shadow, forget=samples_on(dataset, forget_ids[was_member], device),
                              retain=samples_on(dataset, members[~torch.isin(members, forget_ids)], device),
                              out=samples_on(dataset, outsiders[~torch.isin(outsiders, forget_ids)], device),
                              method_params=task.method_params.model_copy(update={"seed": seed}), on_step=None)
        original.append(confidence(shadow, forget))
        unlearned.append(confidence(unlearn(method, shadow_task), forget))
        trained_on.append(was_member)
    return UnlearnedReferences(torch.stack(unlearned), torch.stack(original), torch.stack(trained_on))


def versus_retrained(audited: torch.Tensor, retrained: torch.Tensor, references: UnlearnedReferences,
                     low_fprs: list[float]) -> dict[str, float]:
    """U-LiRA's metrics (AUC, TPR at the low FPRs) of the audited model's forget confidences against the
    retrained model's: 0.5 = the attack cannot tell which of the two was unlearned."""
    return membership_metrics(ulira_scores(audited, references), ulira_scores(retrained, references), low_fprs)


def confidence(model: nn.Module, samples: Samples) -> torch.Tensor:
    """The model's logit-scaled confidence on the samples' labels (float64, on the CPU)."""
    return logit_scaled_confidence(predict_logits(model, samples[0]).double(), samples[1])


def report(results: Results, dataset: str, low_fprs: list[float]) -> str:
    """reports/ulira.md: one row per method."""
    low = f"tpr_at_{fpr_label(low_fprs[0])}_fpr"
    lines = ["# U-LiRA: unlearned, or never trained?", "",
             f"Stage `ulira` on the pipeline's {dataset} artifacts; {hardware()}. Reference models: the online "
             "shadows, each before and after unlearning the forget samples it trained on (remi/audit/ulira.py). "
             "AUC 0.5 = the attack cannot tell the unlearned model from the retrained one on the forget "
             f"samples; TPR at {low_fprs[0]:g} FPR alongside. Confidence shift: the mean of the method's "
             "logit-scaled confidence minus the retrained model's, per split (the same shift everywhere is a "
             "change of overall confidence, not of the forget samples alone).", "",
             "| method | reference models | method vs retrain: AUC | TPR | held-out references: AUC | TPR "
             "| confidence shift: forget / retain / test | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for method, r in results.items():
        cells = [f"{r[part]['auc']:.3f} | {r[part][low]:.3f}" for part in ("model", "held_out")]
        shift = " / ".join(f"{r['confidence_shift'][name]:+.2f}" for name in ("forget", "retain", "test"))
        lines.append(f"| {method} | {r['references']} | " + " | ".join(cells) + f" | {shift} | {r['seconds']:.1f} |")
    return "\n".join(lines) + "\n"
