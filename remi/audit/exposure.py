"""Where the exposure left after unlearning sits: one attack's forget-vs-holdout AUC within each group of the
forget set, the groups ranked by the target's score (the samples the target memorised most come last).

    remi exposure [--attack online_lira] [--groups 4]     (after `remi run`; reads reports/membership_scores.csv)

A method can match retraining's AUC over the whole forget set and still leave its most memorised samples
looking like members: a thin tail that the whole set's AUC averages away, but that per-example attacks
read. Retraining's row is what never having trained on them gives each group (the harder samples sit
lower there too).
"""

import csv
import math
from collections import defaultdict
from pathlib import Path

import torch

from remi.attacks.roc import rank_auc
from remi.audit.rendering import SCORE_COLUMNS
from remi.errors import UserError

Scores = dict[tuple[str, str, str], dict[int, float]]  # (model, attack, part) -> sample id -> score


def read_scores(path: Path) -> Scores:
    """The audit's per-example scores (`reports/membership_scores.csv`)."""
    if not path.is_file():
        raise UserError(f"{path} not found: run `remi run` first (the audit stage writes it).")
    scores: Scores = defaultdict(dict)
    redo = "re-run the audit stage (`remi run audit`)"
    try:
        with path.open(newline="") as file:
            table = csv.DictReader(file)
            if not set(SCORE_COLUMNS) <= set(table.fieldnames or ()):
                raise UserError(f"{path} is not the audit's score table (its header lacks "
                                f"{', '.join(sorted(set(SCORE_COLUMNS) - set(table.fieldnames or ())))}); {redo}.")
            for line, row in enumerate(table, start=2):
                try:
                    score = float(row["score"])
                    if not math.isfinite(score):
                        raise ValueError(f"score {row['score']!r} is not a finite number")
                    scores[row["model"], row["attack"], row["part"]][int(row["sample_id"])] = score
                except (TypeError, ValueError) as error:
                    raise UserError(f"{path}, line {line}: not the audit's score table ({error}); {redo}.") from error
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path} is not the audit's score table ({error}); {redo}.") from error
    return scores


def exposure_by_group(scores: Scores, attack: str, groups: int) -> dict[str, list[float]]:
    """model -> the attack's AUC of each forget group against the whole holdout, groups in ascending order
    of the target's score on the forget samples."""
    models = sorted({model for model, scored, _ in scores if scored == attack})
    if "target" not in models:
        attacks = sorted({scored for model, scored, _ in scores if model == "target"})
        raise UserError(f"no target scores for attack {attack!r}; the audit scored: {', '.join(attacks)}.")
    target_forget = scores["target", attack, "forget"]
    if not 1 <= groups <= len(target_forget):
        raise UserError(f"--groups {groups}: choose 1 to {len(target_forget)} (the forget samples scored).")
    ranked = sorted(target_forget, key=target_forget.__getitem__)
    chunks = [chunk.tolist() for chunk in torch.tensor(ranked).tensor_split(groups)]
    table = {}
    for model in ["target", *(m for m in models if m != "target")]:
        forget, holdout = scores[model, attack, "forget"], scores[model, attack, "audit_holdout"]
        if not holdout or any(i not in forget for i in ranked):
            raise UserError(f"{model}'s {attack} scores miss forget or holdout samples the target has; re-run the "
                            "audit stage (`remi run audit`).")
        nonmembers = torch.tensor(list(holdout.values()))
        table[model] = [rank_auc(torch.tensor([forget[i] for i in chunk]), nonmembers) for chunk in chunks]
    return table


def print_exposure(path: Path, attack: str, groups: int) -> None:
    table = exposure_by_group(read_scores(path), attack, groups)
    print(f"{attack} AUC, forget group vs all of audit_holdout; groups by the target's score, lowest first")
    print("| model | " + " | ".join(f"group {g + 1}" for g in range(groups)) + " |")
    print("|---|" + "---|" * groups)
    for model, aucs in table.items():
        print(f"| {model} | " + " | ".join(f"{auc:.3f}" for auc in aucs) + " |")
