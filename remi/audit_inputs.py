"""The audit's samples and attack inputs, read from the pipeline's split files and models on disk.

The audit stage and tools/remi_ablation.py audit models through these, so both score the same
samples against the same reference models and attack.
"""

from typing import Any

import torch

from remi.artifacts import load_attack, load_model
from remi.audit import AuditSets, attack_inputs
from remi.datasets import Dataset
from remi.layout import ATTACK_DIR, shadow_dir, split_path
from remi.membership_attacks import AttackInputs
from remi.splits import load_split, retain_ids


def load_audit_sets(audit_params: dict[str, Any]) -> AuditSets:
    """Forget vs audit_holdout, plus the retain and test samples the attacks fit on (data/splits/)."""
    target_train, forget = load_split(split_path("target_train")), load_split(split_path("forget"))
    return AuditSets.draw(forget, retain_ids(target_train, forget), load_split(split_path("audit_holdout")),
                          load_split(split_path("test")), audit_params)


def load_attack_inputs(params: dict[str, Any], dataset: Dataset, sets: AuditSets,
                       device: torch.device) -> AttackInputs:
    """The shadows as reference models (predicting on `device`) and the shadow-trained attack
    (models/); the attacks themselves score on the CPU."""
    references = [load_model(shadow_dir(i), device) for i in range(params["shadows"]["count"])]
    return attack_inputs(dataset, sets, references, load_attack(ATTACK_DIR), params["audit"])
