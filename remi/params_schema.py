"""params.yaml as typed sections (pydantic v2), so a bad value is refused before any training and the
code reads `params.remi.lambda_kl` instead of untyped dictionary look-ups.

Why pydantic: it is already installed (MLflow depends on it), its strict mode refuses the coercions
a params file must not get (`"12"` or `12.0` for a count, `true` for a number), it reports every
problem at once with its location, and the models double as the type hints. What it does not do
is cross-field checks between sections; `Params` adds them as one model validator. Names selectable
here come from remi/catalog.py, so validating never imports (and never depends on) an implementation.
"""

from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from remi.catalog import (
    AUDIT_ATTACKS,
    CONVOLUTIONAL_NETWORKS,
    DATASETS,
    IMAGE_DATASETS,
    LEAKAGE_ESTIMATORS,
    NETWORKS,
    PRECISIONS,
    REFERENCE,
    SIGNAL_MATCHES,
    SIGNAL_REFERENCES,
    STOP_TARGETS,
    UNLEARNING_METHODS,
    UNSEEN_MATCHES,
)

MAX_INT = 2**31 - 1  # counts, sizes and seeds: larger values only overflow somewhere downstream
# List bounds, checked before the items: a million-item list must not produce a million errors.
MAX_LAYERS = 16
MAX_LOW_FPRS = 8
# U-LiRA's held-out test fits on all reference models but one, and a spread needs two on one side.
ULIRA_MIN_REFERENCES = 4

Seed = Annotated[int, Field(ge=0, le=MAX_INT)]
Count = Annotated[int, Field(gt=0, le=MAX_INT)]
NonNegativeCount = Annotated[int, Field(ge=0, le=MAX_INT)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
OpenFraction = Annotated[float, Field(gt=0, lt=1)]


def _one_of(names: tuple[str, ...], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if value not in names:
            raise ValueError(f"unknown {what} {value!r}; known: {', '.join(names)}")
        return value

    return AfterValidator(check)


def _distinct(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("lists a name twice")
    return values


def _inside_repository(value: str) -> str:
    path = PurePosixPath(value)
    if not value or "\0" in value or path.is_absolute() or ".." in path.parts:
        raise ValueError("must be a relative path inside the repository, e.g. data/raw/fashion_mnist")
    return value


MethodName = Annotated[str, _one_of(UNLEARNING_METHODS, "unlearning method")]
AttackName = Annotated[str, _one_of(AUDIT_ATTACKS, "audit attack")]


class Section(BaseModel):
    """Strict: unknown keys, wrong types and non-finite numbers are errors, nothing is coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class Data(Section):
    dataset: Annotated[str, _one_of(DATASETS, "dataset")]
    raw_dir: Annotated[str, AfterValidator(_inside_repository)]


class Splits(Section):
    seed: Seed
    target_train: Count
    out: Count
    audit_holdout: Count
    test: Count
    shadow_pool: Count


class Forget(Section):
    mode: Literal["random", "class", "requests"]
    fraction: OpenFraction
    class_label: NonNegativeCount
    seed: Seed


class SmallCnn(Section):
    conv1_channels: Count
    conv2_channels: Count
    hidden_units: Count


class Mlp(Section):
    hidden_units: Annotated[list[Count], Field(min_length=1, max_length=MAX_LAYERS)]


class ResNet(Section):
    width: Count


class Model(Section):
    """The architecture and every architecture's options (kept so a profile switch is one key)."""

    arch: Annotated[str, _one_of(NETWORKS, "network")]
    small_cnn: SmallCnn
    mlp: Mlp
    resnet18: ResNet
    resnet9: ResNet


class Train(Section):
    epochs: Count
    batch_size: Count
    max_lr: Positive
    seed: Seed
    # float32 when left out (recipes built in code; params.yaml names it). remi/runtime/precision.py
    precision: Annotated[str, _one_of(PRECISIONS, "precision")] = "float32"


class Shadows(Section):
    count: Annotated[int, Field(ge=2, le=MAX_INT)]
    seed: Seed
    train_together: Count  # shadows per vectorised block (1: one by one)


class Attack(Section):
    hidden_units: Count
    epochs: Count
    batch_size: Count
    lr: Positive
    holdout_shadows: Count
    seed: Seed


class Unlearn(Section):
    methods: Annotated[list[MethodName], Field(min_length=1, max_length=len(UNLEARNING_METHODS)),
                       AfterValidator(_distinct)]


class Retrain(Section):
    seed: Seed


class Finetune(Section):
    epochs: Count
    batch_size: Count
    lr: Positive
    seed: Seed


class TwoSetFineTune(Section):
    """The methods built on gradient_methods._two_set_fine_tune."""

    steps: Count
    batch_size: Count
    lr: Positive
    retain_weight: Fraction
    seed: Seed


class Salun(TwoSetFineTune):
    saliency_fraction: OpenFraction


class Scrub(Section):
    steps: Count
    forget_steps: NonNegativeCount
    batch_size: Count
    lr: Positive
    seed: Seed


class Fisher(Section):
    alpha: Positive
    max_variance: Positive
    samples: Count
    batch_size: Count
    seed: Seed


class Ssd(Section):
    alpha: Positive
    dampening: Positive
    samples: Count
    batch_size: Count
    seed: Seed


class Remi(Section):
    estimator: Annotated[str, _one_of(LEAKAGE_ESTIMATORS, "leakage estimator")]
    lr: Positive
    trainable_layers: NonNegativeCount
    max_steps: Count
    batch_size: Annotated[int, Field(ge=2, le=MAX_INT)]  # the signal term takes a batch's variance
    lambda_ce: NonNegative
    lambda_distill: NonNegative
    lambda_mi: NonNegative
    lambda_kl: NonNegative
    signal_match: Annotated[str, _one_of(SIGNAL_MATCHES, "signal match")]
    lambda_unseen: NonNegative
    unseen_match: Annotated[str, _one_of(UNSEEN_MATCHES, "unseen match")]
    unseen_raise: Fraction
    lambda_anchor: NonNegative
    signal_reference: Annotated[str, _one_of(SIGNAL_REFERENCES, "signal reference")]
    check_every: Count
    stop_target: Annotated[str, _one_of(STOP_TARGETS, "stop target")]
    target_auc: Fraction
    auc_tolerance: Fraction
    accuracy_tolerance: Fraction
    seed: Seed


class ForgettingQuality(Section):
    models: Annotated[int, Field(ge=2, le=MAX_INT)]
    seed: Seed
    train_together: Count  # retrainings per vectorised block (1: one by one)
    delta: Annotated[float, Field(ge=0, lt=0.5)]
    bin_width: Positive


class Audit(Section):
    attacks: Annotated[list[AttackName], Field(min_length=1, max_length=len(AUDIT_ATTACKS)),
                       AfterValidator(_distinct)]
    low_fprs: Annotated[list[OpenFraction], Field(min_length=1, max_length=MAX_LOW_FPRS)]
    retain_samples: Count
    fit_samples: Count
    population_samples: Count
    rmia_offline_a: Fraction
    seed: Seed


class Acceptance(Section):
    """What "indistinguishable from retraining" means: the audit report shows each limit as pass/miss
    for every method, and the gate releases gate.method only if every gated limit passes."""

    min_target_attack_auc: Fraction
    max_auc_gap: Annotated[dict[AttackName, NonNegative], Field(max_length=len(AUDIT_ATTACKS))]
    max_ulira_auc: Fraction  # U-LiRA's AUC, the method's model against the retrained one (0.5: no trace)
    max_forget_accuracy_gap: NonNegative
    max_test_accuracy_drop: NonNegative
    max_seconds_ratio: NonNegative


class Gate(Section):
    method: MethodName
    registered_model: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")]


class Cycle(Section):
    """The re-unlearning job (`remi cycle`); of the stages, only the gate reads it (compaction)."""

    sequential: bool  # start each cycle from the model released last and forget only the new requests
    compact_every: NonNegativeCount  # with sequential: every N-th release is retrained from scratch (0: never)
    compact_on_gate_failure: bool  # with sequential: release the retrained model when the incremental one fails


METHOD_SECTIONS: dict[str, type[Section]] = {
    "retrain": Retrain, "remi": Remi, "finetune": Finetune, "neggrad_plus": TwoSetFineTune,
    "random_label": TwoSetFineTune, "salun": Salun, "scrub": Scrub, "fisher": Fisher, "ssd": Ssd}


class Params(Section):
    data: Data
    splits: Splits
    forget: Forget
    model: Model
    train: Train
    shadows: Shadows
    online_shadows: Shadows
    attack: Attack
    unlearn: Unlearn
    retrain: Retrain
    finetune: Finetune
    neggrad_plus: TwoSetFineTune
    random_label: TwoSetFineTune
    salun: Salun
    scrub: Scrub
    fisher: Fisher
    ssd: Ssd
    remi: Remi
    forgetting_quality: ForgettingQuality
    audit: Audit
    acceptance: Acceptance
    gate: Gate
    cycle: Cycle

    def method(self, name: str) -> Section:
        """A method's section (`params.remi` for "remi")."""
        section = getattr(self, name)
        assert isinstance(section, METHOD_SECTIONS[name])
        return section

    @model_validator(mode="after")
    def _cross_checks(self) -> "Params":
        problems = cross_check_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self


def cross_check_problems(params: Params) -> list[str]:
    """Constraints between sections, which no single field can state."""
    problems = []
    if REFERENCE not in params.unlearn.methods:
        problems.append("unlearn.methods must include retrain: every audit gap is measured to it")
    if params.model.arch in CONVOLUTIONAL_NETWORKS and params.data.dataset not in IMAGE_DATASETS:
        problems.append(f"model.arch {params.model.arch} convolves images, but data.dataset {params.data.dataset} "
                        "holds feature vectors: use mlp (as profiles/letter.yaml does)")
    if params.gate.method not in params.unlearn.methods or params.gate.method == REFERENCE:
        problems.append("gate.method must be one of unlearn.methods other than retrain")
    ungated = [a for a in params.acceptance.max_auc_gap if a not in params.audit.attacks]
    if ungated:
        problems.append(f"acceptance.max_auc_gap names attacks the audit does not run: {ungated}")
    retain = params.splits.target_train - max(1, round(params.forget.fraction * params.splits.target_train))
    audited = params.audit.retain_samples + params.audit.fit_samples
    if params.forget.mode == "random" and audited >= retain:  # other modes: checked when the audit draws them
        problems.append(f"audit.retain_samples + audit.fit_samples = {audited}, but the retain set holds {retain} "
                        "(splits.target_train less forget.fraction of it)")
    test_samples = params.audit.fit_samples + params.audit.population_samples
    if test_samples > params.splits.test:
        problems.append(f"audit.fit_samples + audit.population_samples = {test_samples} test samples, "
                        f"but splits.test is {params.splits.test}")
    if params.attack.holdout_shadows >= params.shadows.count:
        problems.append("attack.holdout_shadows must be smaller than shadows.count")
    if params.online_shadows.count < ULIRA_MIN_REFERENCES:
        problems.append(f"online_shadows.count is {params.online_shadows.count}, it needs at least "
                        f"{ULIRA_MIN_REFERENCES}: they are U-LiRA's reference models (stage ulira)")
    return problems
