"""ReMI's ablations and sweeps, each one params switch, audited like the pipeline audits a method.

    remi ablation [--seeds 0 1 2] [--variants NAME ...] [--independent-references | --online-references] [--ulira]
                  [--retrain-floor]
        (after `remi run`; uses its artifacts; default: every variant)
        -> reports/remi_ablation.md, metrics/remi_ablation.json (or *_independent_references.*,
           *_online_references.*)
    remi ablation --list   (the variants, grouped by question; needs no artifacts)

Every variant is `remi` with some of its params.yaml keys changed (the table names them; the variants,
grouped by the question each group answers, are in remi/audit/ablation_variants.py). Each runs once per
ReMI seed on the pipeline's target, splits and attack, in this process; the audit's attacks score it on
forget vs audit_holdout, and its gaps are to the pipeline's retrained model (models/unlearned/retrain),
averaged over the same metrics as the audit's average gap. Seconds / retrain uses the pipeline's retrain
seconds (another process), so treat that column as indicative; steps is where the stop rule (or the step
budget) ended each run. With --ulira, U-LiRA attacks every cell too (about 8 more ReMI runs each: the
online shadows unlearn).

With --retrain-floor, one more row retrains the model with other seeds and audits it the same way: the
gaps that a method indistinguishable from retraining would show on these sets, i.e. how finely the
audit can tell ReMI from retraining at all. Its seed k retrains with retrain.seed + 1 + k, so it never
repeats the pipeline's retrained model, and with --ulira the online shadows retrain too (8 retrainings
per seed).
"""

from pathlib import Path
from typing import Any

import torch

from remi.audit.ablation_variants import VARIANTS, chosen_variants
from remi.audit.comparison import mean_std
from remi.audit.inputs import load_attack_inputs, load_audit_sets
from remi.audit.scoring import gap_metrics, gaps_to_reference, model_metrics, score_model
from remi.audit.ulira import confidence, unlearned_references, versus_retrained
from remi.catalog import REFERENCE
from remi.data.datasets import Dataset, load_dataset
from remi.data.splits import load_split
from remi.errors import ParamsError
from remi.networks.checkpoints import load_model
from remi.params_schema import Params
from remi.pipeline import tracking
from remi.pipeline.layout import split_path, unlearn_metrics_path, unlearned_dir
from remi.pipeline.params import load_params, validate
from remi.pipeline.starting_model import read_starting_model
from remi.pipeline.starting_weights import load_starting_model
from remi.pipeline.tasks import load_task
from remi.runtime.device import compute_device, configure_threads, hardware
from remi.runtime.files import read_json, write_bytes, write_json
from remi.unlearning import UnlearningTask, run_method

FLOOR = "retrain, other seeds (the floor)"
FLOOR_SWITCHES = "retraining with retrain.seed + 1 + seed; its steps are its last epoch's index"


def columns(attacks: list[str], ulira: bool) -> list[str]:
    """The report's columns: accuracies, every audited attack's AUC, the largest and the average gap, and
    with `ulira` U-LiRA's AUC against the retrained model and the test confidence shift to it."""
    return ["forget_accuracy", "test_accuracy", *(f"{a}_auc" for a in attacks), "largest_auc_gap", "average_gap",
            *(["ulira_auc", "test_confidence_shift"] if ulira else []), "steps", "seconds"]


def run_ablation(seeds: list[int], independent_references: bool = False, variants: list[str] | None = None,
                 ulira: bool = False, retrain_floor: bool = False, online_references: bool = False) -> None:
    """Each chosen variant (default: all) once per ReMI seed -> reports/remi_ablation.md and
    metrics/remi_ablation.json.

    With `independent_references`, ReMI's reference models (its per-example reference and its
    unseen-model teacher) are the first half of the shadows and the audit's reference-model attacks
    (LiRA, RMIA) the second half, so a gap that closes only because ReMI was tuned against the audit's
    own shadows shows up (-> reports/remi_ablation_independent_references.md and its metrics file).

    With `online_references`, ReMI's references are the online shadows, each used only on the samples it never
    trained on (remi.pipeline.tasks.load_task): teachers that saw much of the retain set, where the shadows saw
    other data. The audit's online LiRA then scores ReMI with its own teachers, so its gap flatters ReMI; the
    other attacks' gaps and the accuracies stand (-> reports/remi_ablation_online_references.md and its metrics
    file). U-LiRA, which unlearns the online shadows themselves, is refused with it.

    With `ulira`, each variant is also attacked with U-LiRA (remi/audit/ulira.py: the online shadows unlearn
    with the variant's params and seed) and its test confidence compared with the retrained model's.

    With `retrain_floor`, retraining with other seeds is audited as one more row (FLOOR): the gaps of a method
    that is retraining, so ReMI's gaps can be read against what the audit can resolve."""
    chosen = chosen_variants(variants)
    if online_references and (independent_references or ulira):
        raise ParamsError("--online-references takes ReMI's references from the online shadows: it cannot be "
                          "combined with --independent-references (the shadows split) or --ulira (which unlearns "
                          "the online shadows themselves).")
    configure_threads()
    params = load_params()
    audit = params.audit
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    sets = load_audit_sets(audit)
    device = compute_device()
    count = params.shadows.count
    if independent_references and count < 2:
        raise ParamsError(f"--independent-references splits the shadows in two; shadows.count is {count}.")
    remi_shadows, audit_shadows = ((range(count // 2), range(count // 2, count)) if independent_references
                                   else (None, None))
    versus_retrain = RetrainComparison(params, dataset, device) if ulira else None
    inputs = load_attack_inputs(params, dataset, sets, device, audit_shadows)

    def metrics_of(model: torch.nn.Module) -> dict[str, float]:
        return model_metrics(model, dataset, sets, score_model(model, dataset, sets, inputs, audit.attacks),
                             audit.low_fprs)

    fixed = {"target": metrics_of(load_starting_model(read_starting_model(), device)),
             REFERENCE: metrics_of(load_model(unlearned_dir(REFERENCE), device))}
    retrain_seconds = read_json(unlearn_metrics_path(REFERENCE))["unlearn_seconds"]
    planned = {name: ("remi", validate(params.model_dump() | {"remi": params.remi.model_dump() | overrides}))
               for name, overrides in chosen.items()}
    if retrain_floor:
        planned[FLOOR] = (REFERENCE, params)
    results: dict[str, list[dict[str, float]]] = {}
    curves: dict[str, dict[int, list[tuple[int, dict[str, float]]]]] = {}
    for name, (method, variant) in planned.items():
        for seed in seeds:
            seeded = seeded_params(variant, method, seed)
            steps = StepLog()
            task = load_task(seeded, dataset, method, device, reference_shadows=remi_shadows, on_step=steps,
                             online_references=online_references)
            model, seconds = run_method(method, task)
            curves.setdefault(name, {})[seed] = steps.curves
            per_model = fixed | {name: metrics_of(model) | {"seconds": seconds, "steps": steps.step}}
            gaps = gaps_to_reference(per_model, gap_metrics(audit.attacks, audit.low_fprs))[name]
            gaps["largest_auc_gap"] = max(gaps[f"gap_{a}_auc"] for a in audit.attacks)
            if versus_retrain is not None:
                gaps |= versus_retrain.measure(task, model, method)
            results.setdefault(name, []).append(per_model[name] | gaps)
            ulira_auc = f", U-LiRA {gaps['ulira_auc']:.3f}" if "ulira_auc" in gaps else ""
            print(f"{name:32s} seed {seed}: average gap {gaps['average_gap']:.4f}{ulira_auc}, {seconds:.2f} s",
                  flush=True)
    summary: dict[str, dict[str, Any]] = {}
    for name, runs in results.items():
        # Each attack's own gap too (the JSON only): the mean |gap| over seeds, not the gap of the mean AUC.
        kept = columns(audit.attacks, ulira) + [f"gap_{a}_auc" for a in audit.attacks]
        summary[name] = {key: mean_std([run[key] for run in runs]) for key in kept}
        summary[name] |= {"seconds_ratio_to_retrain": summary[name]["seconds"]["mean"] / retrain_seconds,
                          "switches": VARIANTS.get(name, {})}
    stem = ("remi_ablation_independent_references" if independent_references
            else "remi_ablation_online_references" if online_references else "remi_ablation")
    numbers, report_path = Path(f"metrics/{stem}.json"), Path(f"reports/{stem}.md")
    write_json(numbers, {"dataset": params.data.dataset, "seeds": seeds,
                         "remi_references": "online shadows, each on the samples it never trained on"
                         if online_references else "shadows",
                         "remi_reference_shadows": list(remi_shadows or range(count)),
                         "audit_reference_shadows": list(audit_shadows or range(count)),
                         "variants": summary, "target": fixed["target"], "retrain": fixed["retrain"]})
    command = _command(seeds, independent_references, ulira, retrain_floor, list(chosen), online_references)
    report = _report(summary, fixed, params, command, seeds, retrain_seconds, remi_shadows, audit_shadows, ulira,
                     online_references)
    write_bytes(report_path, report.encode())
    # After the files: a tracking store that fails here loses none of the results.
    _log_to_mlflow(summary, fixed, curves, params, command, [numbers, report_path])
    print(report)


def _log_to_mlflow(summary: dict[str, dict[str, Any]], fixed: dict[str, dict[str, float]],
                   curves: dict[str, dict[int, list[tuple[int, dict[str, float]]]]], params: Params,
                   command: str, files: list[Path]) -> None:
    """One MLflow run for the ablation (the report and its numbers as artifacts, the target's and the retrained
    model's metrics as target/... and retrain/...) and a child run per variant: each column's mean over the seeds
    under the audit's metric names, its std as <name>_std, and every seed's curves as seed<k>/<name> (ReMI's
    losses, stop checks and teacher raise), so MLflow's Compare lines the variants up beside the pipeline's runs."""
    upstream = ["prepare", "target", "attack", "shadows", "online_shadows", f"unlearn/{REFERENCE}"]
    sections = {"command": command, "remi": params.remi, "audit": params.audit}
    with tracking.stage_run("ablation", "ablation", sections, upstream) as parent:
        tracking.log_metrics({f"{model}/{key}": value for model in ("target", REFERENCE)
                              for key, value in fixed[model].items()})
        for path in files:
            tracking.log_artifacts(path, "ablation")
        for name, values in summary.items():
            with tracking.stage_run("ablation", name, {"variant": name, "switches": _switches(name, values)},
                                    parent_run_id=parent.info.run_id):
                measured = {key: value for key, value in values.items() if key != "switches"}
                tracking.log_metrics({key: value["mean"] if isinstance(value, dict) else value
                                      for key, value in measured.items()}
                                     | {f"{key}_std": value["std"] for key, value in measured.items()
                                        if isinstance(value, dict)})
                tracking.log_curves([(step, {f"seed{seed}/{key}": value for key, value in logged.items()})
                                     for seed, curve in curves[name].items() for step, logged in curve])


def _switches(name: str, values: dict[str, Any]) -> str:
    """What a variant changes, as the report's switches column and the MLflow run's param say it."""
    if name == FLOOR:
        return FLOOR_SWITCHES
    return ", ".join(f"remi.{key}={value}" for key, value in values["switches"].items()) or "params.yaml"


def seeded_params(params: Params, method: str, seed: int) -> Params:
    """`params` with `method`'s seed set for ablation seed `seed`. Retraining skips the pipeline's own
    retrain.seed, whose model every gap is measured to (a gap of exactly 0 would say nothing)."""
    if method == REFERENCE:
        section = params.retrain.model_copy(update={"seed": params.retrain.seed + 1 + seed})
        return params.model_copy(update={"retrain": section})
    return params.model_copy(update={"remi": params.remi.model_copy(update={"seed": seed})})


class StepLog:
    """A step callback that keeps what a run logged (ReMI's losses, stop checks and teacher raise; retraining's
    epochs), and its last step: where ReMI's stop rule, or its budget, ended it."""

    def __init__(self) -> None:
        self.curves: list[tuple[int, dict[str, float]]] = []

    @property
    def step(self) -> int:
        return self.curves[-1][0] if self.curves else 0

    def __call__(self, step: int, values: dict[str, float]) -> None:
        self.curves.append((step, values))


class RetrainComparison:
    """U-LiRA's AUC of a ReMI model against the pipeline's retrained model on the forget samples, and the
    mean difference of their logit-scaled confidences on the test samples (a global calibration change)."""

    def __init__(self, params: Params, dataset: Dataset, device: torch.device) -> None:
        self.count = params.online_shadows.count
        self.low_fprs = params.audit.low_fprs
        self.dataset, self.device = dataset, device
        self.forget_ids = load_split(split_path("forget"))
        self.forget = dataset.subset(self.forget_ids)
        self.test = dataset.subset(load_split(split_path("test")))
        retrained = load_model(unlearned_dir(REFERENCE), device)
        self.retrained_forget = confidence(retrained, self.forget)
        self.retrained_test = confidence(retrained, self.test)

    def measure(self, task: UnlearningTask, model: torch.nn.Module, method: str) -> dict[str, float]:
        references = unlearned_references(task, method, self.dataset, self.forget_ids, self.count, self.device)
        attacked = versus_retrained(confidence(model, self.forget), self.retrained_forget, references, self.low_fprs)
        shift = float((confidence(model, self.test) - self.retrained_test).mean())
        return {"ulira_auc": attacked["auc"], "test_confidence_shift": shift}


def _command(seeds: list[int], independent_references: bool, ulira: bool, retrain_floor: bool,
             variants: list[str], online_references: bool) -> str:
    """The `remi ablation` command line that gives this run (the report's first line, the MLflow run's param)."""
    flags = " --independent-references" if independent_references else ""
    flags += " --online-references" if online_references else ""
    flags += " --ulira" if ulira else ""
    flags += " --retrain-floor" if retrain_floor else ""
    if variants != list(VARIANTS):
        flags += " --variants " + " ".join(f'"{name}"' for name in variants)
    return f"remi ablation --seeds {' '.join(map(str, seeds))}{flags}"


def _report(summary: dict, fixed: dict, params: Params, command: str, seeds: list[int], retrain_seconds: float,
            remi_shadows: range | None, audit_shadows: range | None, ulira: bool, online_references: bool) -> str:
    shown = columns(params.audit.attacks, ulira)
    split = (" ReMI's per-example reference and unseen-model teacher were the online shadows, each on the samples "
             "it never trained on; online LiRA audits with these same models, so its gap flatters ReMI."
             if online_references else
             "" if remi_shadows is None or audit_shadows is None else
             f" ReMI's per-example reference and unseen-model teacher used shadows {remi_shadows.start}-"
             f"{remi_shadows.stop - 1} only, the "
             f"audit's LiRA, LiRA-fv and RMIA shadows {audit_shadows.start}-{audit_shadows.stop - 1} only (the "
             "shadow attack model and online LiRA as in the pipeline).")
    lines = ["# ReMI ablations and sweeps", "",
             f"`{command}` on the pipeline's "
             f"{params.data.dataset} artifacts ({params.model.arch}); cells are mean ± std over ReMI "
             f"seeds {', '.join(map(str, seeds))}; {hardware()}. "
             f"Retrain took {retrain_seconds:.1f} s in the pipeline run.{split} Switches are changes to "
             "params.yaml's remi section; largest_auc_gap is the largest |AUC - retrain's AUC| over the "
             "audit's attacks, per seed, then averaged.", "",
             "| variant | switches | " + " | ".join(shown) + " | s / retrain s |",
             "|---" * (len(shown) + 3) + "|"]
    for name in ("target", "retrain"):
        cells = [f"{fixed[name][k]:.3f}" if k in fixed[name] else "" for k in shown]
        lines.append(f"| {name} (pipeline) |  | " + " | ".join(cells) + " |  |")
    for name, values in summary.items():
        switches = _switches(name, values)
        cells = [f"{values[k]['mean']:.3f} ± {values[k]['std']:.3f}" for k in shown]
        lines.append(f"| {name} | {switches} | " + " | ".join(cells) + f" | {values['seconds_ratio_to_retrain']:.3f} |")
    return "\n".join(lines) + "\n"

