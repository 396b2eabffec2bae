"""Compaction: when the gate releases the model retrained from scratch instead of the incremental one.

A chain of approximate unlearning steps (sequential unlearning, params `cycle.sequential`) can drift
away from retraining. Compaction bounds the drift: every `cycle.compact_every`-th release since a
model trained from scratch, and whenever the incremental model fails the gate (with
`cycle.compact_on_gate_failure`), the release is the retrained model, which the audit trained anyway
as its reference. The chain then continues from that model.
"""

from remi.params_schema import Cycle
from remi.pipeline.starting_model import StartingModel


def compaction_reason(policy: Cycle, start: StartingModel, gate_passed: bool) -> str | None:
    """Why this release must be the retrained model; None when it need not be."""
    if not policy.sequential:
        return None
    if policy.compact_every and start.releases_since_retrain + 1 >= policy.compact_every:
        return (f"every {policy.compact_every} releases (cycle.compact_every): "
                f"{start.releases_since_retrain} incremental release(s) since a model trained from scratch")
    if not gate_passed and policy.compact_on_gate_failure:
        return "the incremental model failed the gate (cycle.compact_on_gate_failure)"
    return None
