"""`remi ablation`'s variants: each a name and the keys of params.yaml's remi section it changes, grouped by
the question they answer (`remi ablation --list` prints them so).

A name is what the report prints and what `--variants` and `remi fq-anatomy --variants` take, and
BENCHMARKS.md quotes the commands that ran them: rename none. A comment says why a variant exists where its
name does not; what it measured lives in BENCHMARKS.md.
"""

from dataclasses import dataclass

from remi.errors import UserError

Switches = dict[str, object]


@dataclass(frozen=True)
class VariantGroup:
    question: str
    variants: dict[str, Switches]


GROUPS: tuple[VariantGroup, ...] = (
    VariantGroup("What each loss term adds: each one removed, and the settings before each was added", {
        "default": {},
        "before the anchor (MI 0.75)": {"lambda_anchor": 0.0, "lambda_mi": 0.75},
        "no anchor": {"lambda_anchor": 0.0},
        "before the unseen term (MI 0.5)": {"lambda_unseen": 0.0, "lambda_mi": 0.5, "lambda_anchor": 0.0},
        "no unseen term": {"lambda_unseen": 0.0},
        "before 2026-12-04 (population, KL 1.5, distill 1, MI 0.5)": {
            "signal_reference": "population", "lambda_kl": 1.5, "lambda_distill": 1.0, "lambda_unseen": 0.0,
            "lambda_mi": 0.5, "lambda_anchor": 0.0},
        "no MI term": {"lambda_mi": 0.0},
        "no KL term": {"lambda_kl": 0.0},
        "no MI, no KL, no unseen (fidelity and anchor only)": {
            "lambda_mi": 0.0, "lambda_kl": 0.0, "lambda_unseen": 0.0},
    }),
    VariantGroup("How strong each loss term should be", {
        "lambda_mi 0.5": {"lambda_mi": 0.5},
        "lambda_mi 0.75": {"lambda_mi": 0.75},
        "lambda_unseen 1": {"lambda_unseen": 1.0},
        "lambda_unseen 3": {"lambda_unseen": 3.0},
        "lambda_unseen 4": {"lambda_unseen": 4.0},
        "lambda_kl 1.5": {"lambda_kl": 1.5},
        "lambda_kl 5": {"lambda_kl": 5.0},
        "lambda_distill 1": {"lambda_distill": 1.0},
        "lambda_distill 3": {"lambda_distill": 3.0},
        "lambda_anchor 0.02": {"lambda_anchor": 0.02},
        "lambda_anchor 0.1": {"lambda_anchor": 0.1},
        "lambda_anchor 0.3": {"lambda_anchor": 0.3},
        "lambda_anchor 1": {"lambda_anchor": 1.0},
    }),
    VariantGroup("What the membership signal is measured against, and by which estimator", {
        "signal from the population": {"signal_reference": "population"},
        "estimator loss_threshold": {"estimator": "loss_threshold"},
        "estimator class_gaussian": {"estimator": "class_gaussian"},
        # On params that set neither (the MLP profiles before 2026-12-05); on the default it repeats the default.
        "unseen 2, per-example reference": {"lambda_unseen": 2.0, "signal_reference": "shadows"},
        # Online LiRA reads the tail of forget samples the target is surest of, which a mean and a variance let
        # through: match the signal's whole distribution, and (the squared distance being larger than the KL at
        # the profiles' weights) with weaker weights.
        "signal matched by quantiles": {"signal_match": "quantiles"},
        "signal matched by quantiles, lambda_kl 0.5": {"signal_match": "quantiles", "lambda_kl": 0.5},
        "signal matched by quantiles, lambda_kl 0.2": {"signal_match": "quantiles", "lambda_kl": 0.2},
        "signal matched by quantiles, lambda_kl 0.1": {"signal_match": "quantiles", "lambda_kl": 0.1},
    }),
    VariantGroup("What the unseen-model term's teacher (a shadow that never saw the sample) should be", {
        # MNIST-5k's shadows are weaker than its target: copy how sure the shadow is of the true class only,
        # not its confusions.
        "unseen term on the true class only": {"unseen_match": "confidence"},
        # Or raise the teacher by how much surer the target is on unseen samples (all of it, or half); raised
        # all the way it is right more often than retraining, hence the tighter accuracy stops.
        "unseen teacher as sure as the target": {"unseen_raise": 1.0},
        "unseen teacher raised half way": {"unseen_raise": 0.5},
        "unseen teacher as sure as the target, accuracy_tolerance 0.01": {
            "unseen_raise": 1.0, "accuracy_tolerance": 0.01},
        "unseen teacher as sure as the target, accuracy_tolerance 0": {"unseen_raise": 1.0, "accuracy_tolerance": 0.0},
        "unseen teacher as sure as the target, lambda_unseen 1": {"unseen_raise": 1.0, "lambda_unseen": 1.0},
        "unseen teacher as sure as the target, signal matched by quantiles, lambda_kl 0.2": {
            "unseen_raise": 1.0, "signal_match": "quantiles", "lambda_kl": 0.2},
        "unseen teacher as sure as the target, signal matched by quantiles, lambda_kl 0.2, accuracy_tolerance 0.01": {
            "unseen_raise": 1.0, "signal_match": "quantiles", "lambda_kl": 0.2, "accuracy_tolerance": 0.01},
    }),
    VariantGroup("How ReMI steps: learning rate, batch, which layers train, and the step budget", {
        "lr 0.001 (before 2026-12-05)": {"lr": 0.001},
        # Fashion-MNIST's since 2026-12-05, for the profiles that keep 0.001.
        "lr 0.003": {"lr": 0.003},
        # The MLP profiles fine-tune every layer: the same forgetting reached more slowly may disturb the shared
        # features less.
        "lr 0.0003": {"lr": 0.0003},
        # Faster still: 0.001 -> 0.003 widened the runs' scatter across seeds (forgetting quality) at no cost to
        # the attacks; a faster head may also reach the stop in fewer steps (ReMI's seconds, issue 10).
        "lr 0.006": {"lr": 0.006},
        "lr 0.01": {"lr": 0.01},
        # Cheaper steps (issue 10): most of a step's cost is the first trainable layer.
        "trainable_layers 1": {"trainable_layers": 1},
        # A frozen first layer for the MLP profiles, as the small CNN's frozen convolutions.
        "trainable_layers 2": {"trainable_layers": 2},
        # Every layer (issue 11's forgetting quality): the frozen features trained on the forget set, and ReMI's
        # per-sample confidences stay close to the target's wherever its teachers come from (BENCHMARKS.md,
        # "Teachers that saw the retain set"). Dearer steps: the whole network runs forward and back.
        "trainable_layers 0 (every layer)": {"trainable_layers": 0},
        "trainable_layers 0 (every layer), lr 0.001": {"trainable_layers": 0, "lr": 0.001},
        "batch_size 64": {"batch_size": 64},
        "batch_size 64, lr 0.002": {"batch_size": 64, "lr": 0.002},
        "max_steps 200": {"max_steps": 200},
    }),
    VariantGroup("Where the stop rule stops: its band, its tolerances and what it aims at", {
        # The rule approaches target_auc from above and stops at the first check inside the band, so the forget
        # set may end a little more member-like than out: a narrower band, a lower centre, checked more often.
        "auc_tolerance 0.01": {"auc_tolerance": 0.01},
        "target_auc 0.49": {"target_auc": 0.49},
        "auc_tolerance 0.01, check_every 5": {"auc_tolerance": 0.01, "check_every": 5},
        "auc_tolerance 0.01, max_steps 200": {"auc_tolerance": 0.01, "max_steps": 200},
        # The accuracy gap holds the stop as well. On the default params (0.01 with 200 steps since 2026-12-05)
        # the first two repeat the default and the third is the stop before; the MLP profiles pin 0.02 with 120.
        "accuracy_tolerance 0.01": {"accuracy_tolerance": 0.01},
        "accuracy_tolerance 0.01, max_steps 200": {"accuracy_tolerance": 0.01, "max_steps": 200},
        "accuracy_tolerance 0.02, max_steps 120 (before 2026-12-05)": {"accuracy_tolerance": 0.02, "max_steps": 120},
        # Retraining's forget-vs-holdout AUCs sit where the draw of the forget set puts them, not at 0.5: aim at
        # what the shadows, or the retain set's nearest neighbours (which carry the draw's effect), show on the
        # same check samples. The accuracy tolerance is one-sided, so 0 aims at the target's own gap.
        "stop target from the shadows": {"stop_target": "shadows"},
        "stop target from the shadows, accuracy_tolerance 0": {"stop_target": "shadows", "accuracy_tolerance": 0.0},
        "stop target from the neighbours": {"stop_target": "neighbours"},
        "stop target from the neighbours, accuracy_tolerance 0": {
            "stop_target": "neighbours", "accuracy_tolerance": 0.0},
        "stop target from the neighbours, auc_tolerance 0.01": {"stop_target": "neighbours", "auc_tolerance": 0.01},
    }),
)
VARIANTS: dict[str, Switches] = {name: switches for group in GROUPS for name, switches in group.variants.items()}


def chosen_variants(names: list[str] | None) -> dict[str, Switches]:
    """The variants to run, in VARIANTS' order (all of them when `names` is None)."""
    if names is None:
        return VARIANTS
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise UserError(f"unknown ablation variant(s) {', '.join(map(repr, unknown))}; "
                        "`remi ablation --list` shows every name.")
    return {name: switches for name, switches in VARIANTS.items() if name in names}


def listing() -> str:
    """Every variant under its group's question, with the switches it sets (what `remi ablation --list` prints)."""
    lines: list[str] = []
    for group in GROUPS:
        lines += [f"{group.question}:"]
        lines += [f"  {name!r:60s} {', '.join(f'remi.{k}={v}' for k, v in switches.items()) or 'params.yaml'}"
                  for name, switches in group.variants.items()]
    return "\n".join(lines)
