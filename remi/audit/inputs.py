"""The audit's samples and attack inputs, read from the pipeline's split files and models on disk.

The audit stage and `remi ablation` (remi/audit/ablation.py) audit models through these, so both score the same
samples against the same reference models and attack.
"""


import torch

from remi.attacks.audit_attacks import AttackInputs
from remi.attacks.checkpoints import load_attack
from remi.audit.scoring import AuditSets, attack_inputs
from remi.data.datasets import Dataset
from remi.data.splits import load_split, retain_ids
from remi.networks.checkpoints import load_model
from remi.params_schema import Audit, Params
from remi.pipeline.layout import ATTACK_DIR, shadow_dir, split_path


def load_audit_sets(audit_params: Audit) -> AuditSets:
    """Forget vs audit_holdout, plus the retain and test samples the attacks fit on (data/splits/)."""
    target_train, forget = load_split(split_path("target_train")), load_split(split_path("forget"))
    return AuditSets.draw(forget, retain_ids(target_train, forget), load_split(split_path("audit_holdout")),
                          load_split(split_path("test")), audit_params)


def load_attack_inputs(params: Params, dataset: Dataset, sets: AuditSets,
                       device: torch.device) -> AttackInputs:
    """The shadows as reference models (predicting on `device`) and the shadow-trained attack
    (models/); the attacks themselves score on the CPU."""
    references = [load_model(shadow_dir(i), device) for i in range(params.shadows.count)]
    return attack_inputs(dataset, sets, references, load_attack(ATTACK_DIR), params.audit)
