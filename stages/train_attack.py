"""Stage train_attack: the membership attack model, trained on shadow outputs of known membership.

It reads only the shadows: how well it detects the target's members is the audit's job ("audit power",
on the model the unlearning starts from), so this stage never needs the original target, which
`remi purge --target` may have deleted."""

import torch

from remi.attacks.checkpoints import save_attack, save_class_gaussians
from remi.attacks.roc import membership_metrics
from remi.attacks.shadow_attack_model import attack_scores, fit_class_gaussians, train_attack_model
from remi.networks.checkpoints import load_shadow_outputs
from remi.pipeline import tracking
from remi.pipeline.entry_point import stage_main
from remi.pipeline.layout import ATTACK_DIR, metrics_path, run_record_path, shadow_dir
from remi.pipeline.params import load_params
from remi.runtime.files import replace_dir, write_json


def main() -> None:
    params = load_params()
    count, held_out = params.shadows.count, params.attack.holdout_shadows
    outputs = [load_shadow_outputs(shadow_dir(i)) for i in range(count)]
    fit, held = outputs[: count - held_out], outputs[count - held_out :]
    low_fprs = params.audit.low_fprs
    sections = {"attack": params.attack, "shadows": params.shadows}
    with tracking.stage_run("train_attack", "attack", sections, ["shadows"]) as run:
        attack = train_attack_model(*_stack(fit), params.attack)
        held_logits, held_labels, held_member = _stack(held)
        scores = attack_scores(attack, held_logits, held_labels)
        on_shadows = membership_metrics(scores[held_member.numpy()], scores[~held_member.numpy()], low_fprs)
        all_logits, all_labels, all_member = _stack(outputs)
        gaussians = fit_class_gaussians(all_logits[~all_member], all_labels[~all_member])

        def fill(directory):
            save_attack(directory, attack)
            save_class_gaussians(directory, gaussians)

        replace_dir(ATTACK_DIR, fill)
        tracking.write_run_record(run_record_path("attack"), run)
        metrics = {f"shadow_holdout_{k}": v for k, v in on_shadows.items()}
        write_json(metrics_path("train_attack"), metrics)
        tracking.log_metrics(metrics)


def _stack(outputs: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits, labels, is_member) of several shadows, concatenated."""
    logits, labels, is_member = (torch.cat([o[key] for o in outputs]) for key in ("logits", "labels", "is_member"))
    return logits, labels, is_member


if __name__ == "__main__":
    stage_main(main)
