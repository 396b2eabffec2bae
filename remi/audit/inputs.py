"""The audit's samples and attack inputs, read from the pipeline's split files and models on disk.

The audit stage and `remi ablation` (remi/audit/ablation.py) audit models through these, so both score the same
samples against the same reference models and attack.
"""


import torch

from remi.attacks.audit_attacks import SCORED_PARTS, AttackInputs, OnlineShadows
from remi.attacks.checkpoints import load_attack
from remi.audit.scoring import AuditSets, attack_inputs
from remi.data.datasets import Dataset
from remi.data.splits import load_split, retain_ids
from remi.networks.checkpoints import load_model, load_shadow_outputs
from remi.networks.training import predict_logits
from remi.params_schema import Audit, Params
from remi.pipeline.layout import ATTACK_DIR, ONLINE_SHADOWS_DIR, shadow_dir, split_path


def load_audit_sets(audit_params: Audit) -> AuditSets:
    """Forget vs audit_holdout, plus the retain and test samples the attacks fit on (data/splits/)."""
    target_train, forget = load_split(split_path("target_train")), load_split(split_path("forget"))
    return AuditSets.draw(forget, retain_ids(target_train, forget), load_split(split_path("audit_holdout")),
                          load_split(split_path("test")), audit_params)


def load_attack_inputs(params: Params, dataset: Dataset, sets: AuditSets, device: torch.device,
                       reference_shadows: range | None = None) -> AttackInputs:
    """The shadows as reference models (predicting on `device`; all of them unless `reference_shadows`
    names some), the shadow-trained attack and, when online LiRA is audited, the online shadows' saved
    outputs (models/); the attacks score on the CPU."""
    chosen = range(params.shadows.count) if reference_shadows is None else reference_shadows
    references = [load_model(shadow_dir(i), device) for i in chosen]
    inputs = attack_inputs(dataset, sets, references, load_attack(ATTACK_DIR), params.audit)
    if "online_lira" in params.audit.attacks:
        directories = [shadow_dir(i, ONLINE_SHADOWS_DIR) for i in range(params.online_shadows.count)]
        population = dataset.inputs[sets.population]
        population_logits = torch.stack([predict_logits(load_model(d, device), population) for d in directories])
        parts = sets.attack_parts()
        inputs.online_shadows = OnlineShadows.from_outputs(
            [load_shadow_outputs(d) for d in directories], {p: parts[p] for p in SCORED_PARTS}, inputs.labels,
            population_logits)
    return inputs
