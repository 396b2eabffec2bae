"""How far sequential unlearning drifts from retraining, cycle after cycle.

    remi benchmark sequential [--cycles 6] [--requests 2] [--request-samples 50] [--compact-every 0]

Runs `remi cycle` again and again in a scratch copy of this project (its files, the raw data, and
this project's DVC cache, so the target and the attack model come from the run cache when the
profile matches) with forget.mode: requests and cycle.sequential: true, and none of this project's
requests, ledger, starting model or DVC remote. Each cycle first submits `requests` random requests
of `request-samples` target members each. To measure the chain as it is, the
scratch gate's limits are opened (every step is released and the next one starts from it) and there
is no compaction on gate failure; whether each step meets this project's own acceptance limits is
reported beside it. After each cycle it reads the audit, which compares the sequential model with
retraining on the cumulative forget set: |AUC(gate method) - AUC(retrain)| per attack, the forget-
and test-accuracy gaps, and forgetting quality.

With --one-shot, a second chain unlearns the cumulative requests from the target at every cycle;
its cycle 1 would repeat the sequential chain's cycle 1 exactly (the same requests from the target),
so that row is reused rather than run twice.

Writes reports/sequential_drift/drift.{md,json,png} here and logs them to an MLflow run (one step per
cycle) in this project's store.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from remi.audit.acceptance import gate_checks, original_test_accuracy, per_model_from_flat
from remi.data.datasets import load_dataset
from remi.data.splits import make_splits
from remi.errors import UserError
from remi.operations.ledger import now
from remi.params_schema import Acceptance
from remi.pipeline import tracking
from remi.pipeline.layout import REPORTS_DIR, SHADOW_SETS, metrics_path, unlearn_metrics_path
from remi.pipeline.params import load_params
from remi.pipeline.starting_model import BASE_MANIFEST, FROM_TARGET, write_starting_model
from remi.runtime.device import hardware
from remi.runtime.files import atomic_write, read_json, write_json

OUTPUT = REPORTS_DIR / "sequential_drift"
COLUMNS = ("shadow_attack", "loss_attack", "lira_fixed_variance", "rmia")  # AUC gaps shown in the table
LIVE_STATE = ("data/ledger.jsonl", "data/requests/", "data/inbox/", "data/rejected/", "models/base/", ".dvc/config")


@dataclass(frozen=True)
class Plan:
    cycles: int
    requests: int  # new requests per cycle
    samples: int  # members per request
    compact_every: int
    seed: int  # which members are requested, in which order

    @property
    def command(self) -> str:
        return (f"remi benchmark sequential --cycles {self.cycles} --requests {self.requests} --request-samples "
                f"{self.samples} --compact-every {self.compact_every} --seed {self.seed}")


def _scratch_copy(scratch: Path, plan: Plan, sequential: bool) -> None:
    """This project's files (tracked and untracked, not ignored) and raw data, sharing its DVC cache;
    not its operational state: requests, ledger, starting model, DVC remote."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):
        if Path(name).is_file() and not name.startswith(LIVE_STATE):
            (scratch / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(name, scratch / name)
    shutil.copytree("data/raw", scratch / "data/raw", dirs_exist_ok=True)
    for shadows in (s.directory for s in SHADOW_SETS.values() if s.directory.is_dir()):
        shutil.copytree(shadows, scratch / shadows)  # persisted outputs, never restored from the run cache
    opened = {"max_auc_gap": {attack: 1.0 for attack in load_params().acceptance.max_auc_gap},
              "max_ulira_auc": 1.0, "max_forget_accuracy_gap": 1.0, "max_test_accuracy_drop": 1.0}
    (scratch / "sequential.yaml").write_text(yaml.safe_dump({
        "forget": {"mode": "requests"}, "acceptance": opened,
        "cycle": {"sequential": sequential, "compact_every": plan.compact_every, "compact_on_gate_failure": False}}))
    commit = ["git", "-c", "user.name=bench", "-c", "user.email=b@b", "commit", "-qm", "copy"]
    write_starting_model(FROM_TARGET, scratch / BASE_MANIFEST)
    (scratch / ".dvc/config").write_text("[core]\n    autostage = false\n    analytics = false\n")  # no remote
    for command in (["git", "init", "-q"], [sys.executable, "-m", "remi", "profile", "sequential.yaml"],
                    [sys.executable, "-m", "dvc", "cache", "dir", "--local", str(Path(".dvc/cache").resolve())],
                    ["git", "add", "-A"], commit):
        subprocess.run(command, cwd=scratch, check=True, capture_output=True)


def _submit(scratch: Path, digest: str, dataset: str, sample_ids: list[int]) -> None:
    request = str(uuid.uuid4())
    envelope = scratch / f"{request}.envelope.json"
    envelope.write_text(json.dumps({"subject_request_id": request, "type": "erasure",
                                    "submitted_time": now().isoformat(), "dataset": dataset,
                                    "dataset_digest": digest, "sample_ids": sample_ids}))
    subprocess.run([sys.executable, "-m", "remi", "request", "add", envelope.name], cwd=scratch, check=True,
                   capture_output=True)
    envelope.unlink()


def _row(cycle: int, forget_total: int, audit: dict[str, float], unlearn: dict[str, float], method: str,
         acceptance: Acceptance) -> dict[str, Any]:
    per_model = per_model_from_flat(audit)
    checks = gate_checks(per_model, acceptance, method)
    return {"cycle": cycle, "forget_samples_total": forget_total,
            "within_acceptance_limits": float(all(check["passed"] for check in checks)),
            "forgotten_this_cycle": unlearn.get("forgotten_samples"),
            "start_release_version": unlearn.get("start_release_version"),
            **{f"gap_{a}_auc": audit.get(f"{method}/gap_{a}_auc") for a in COLUMNS},
            "gap_forget_accuracy": audit.get(f"{method}/gap_forget_accuracy"),
            "test_accuracy_drop": original_test_accuracy(per_model["target"])[1] - audit[f"{method}/test_accuracy"],
            "forgetting_quality": audit.get(f"{method}/forgetting_quality"),
            "retrain_forgetting_quality": audit.get("retrain/forgetting_quality")}


def _chain(plan: Plan, order: np.ndarray, sequential: bool,
           first_row: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per cycle of a fresh scratch copy; sequential, or each cycle from the target (one-shot).
    With `first_row` given, cycle 1 is not run again: its requests are submitted and the row is taken
    as it is (both chains' first cycle unlearns the same requests from the target, the same run)."""
    params = load_params()
    method, dataset = params.gate.method, load_dataset(params.data.dataset, params.data.raw_dir)
    rows = []
    scratch = Path(tempfile.mkdtemp(prefix="remi-sequential-"))
    # The stages run with this interpreter; the cycles log to the scratch copy's own MLflow store.
    env = os.environ | {"REMI_PYTHON": sys.executable, "MLFLOW_TRACKING_URI": f"sqlite:///{scratch / 'mlflow.db'}"}
    try:
        _scratch_copy(scratch, plan, sequential)
        for cycle in range(1, plan.cycles + 1):
            for r in range(plan.requests):
                first = ((cycle - 1) * plan.requests + r) * plan.samples
                _submit(scratch, dataset.digest, dataset.name, order[first:first + plan.samples].tolist())
            if cycle == 1 and first_row is not None:
                rows.append(first_row)
                continue
            result = subprocess.run([sys.executable, "-m", "remi", "cycle"], cwd=scratch, env=env,
                                    capture_output=True, text=True)
            if result.returncode != 0:  # with the gate opened, every cycle releases
                raise UserError(f"cycle {cycle} exited {result.returncode}:\n{result.stdout[-3000:]}\n"
                                f"{result.stderr[-3000:]}")
            row = _row(cycle, cycle * plan.requests * plan.samples, read_json(scratch / metrics_path("audit")),
                       read_json(scratch / unlearn_metrics_path(method)), method, params.acceptance)
            rows.append(row)
            print(f"{'sequential' if sequential else 'one-shot'} cycle {cycle}: " + ", ".join(
                f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


def benchmark_sequential(plan: Plan, one_shot: bool) -> None:
    """The sequential chain, and with `one_shot` the same requests unlearned from the target each cycle."""
    params = load_params()
    members = make_splits(len(load_dataset(params.data.dataset, params.data.raw_dir)), params.splits)
    order = np.random.default_rng(plan.seed).permutation(members["target_train"].numpy())
    if plan.cycles * plan.requests * plan.samples > len(order):
        raise UserError(f"{plan.cycles} cycles x {plan.requests} requests x {plan.samples} samples is more than "
                        f"the {len(order)} members of the target's training set.")
    rows = _chain(plan, order, sequential=True)
    one_shot_rows = _chain(plan, order, sequential=False, first_row=rows[0]) if one_shot else []
    _write(rows, one_shot_rows, params.data.dataset, params.gate.method, plan)


def _table(rows: list[dict[str, Any]], method: str) -> list[str]:
    header = ["cycle", "forget total", "forgotten now", "from version",
              *(f"AUC gap {a}" for a in COLUMNS), "forget acc gap", "test acc drop",
              f"FQ {method}", "FQ retrain", "within limits"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row["cycle"]), str(row["forget_samples_total"]), str(row["forgotten_this_cycle"]),
                 str(row["start_release_version"]),
                 *(f"{row[f'gap_{a}_auc']:.3f}" for a in COLUMNS), f"{row['gap_forget_accuracy']:.3f}",
                 f"{row['test_accuracy_drop']:.3f}", f"{row['forgetting_quality']:.3f}",
                 f"{row['retrain_forgetting_quality']:.3f}", "yes" if row["within_acceptance_limits"] else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _report(rows: list[dict[str, Any]], one_shot_rows: list[dict[str, Any]], dataset: str, method: str,
            plan: Plan) -> str:
    lines = [f"# Sequential unlearning: drift of {method} from retraining over {len(rows)} cycles", "",
             f"Dataset {dataset}, the params.yaml profile, {plan.requests} new request(s) of {plan.samples} random "
             f"target members per cycle, `cycle.compact_every: {plan.compact_every}`. Each cycle's audit compares "
             "the released model with retraining on the cumulative forget set. The gate was opened so that every "
             "step is released; *within limits* says whether the step meets params.yaml `acceptance` (the gated "
             "limits). FQ: forgetting quality (retrain: retrain vs retrain). "
             f"Hardware: {hardware()}. Command: `{plan.command}{' --one-shot' if one_shot_rows else ''}`.", "",
             "## Sequential: each cycle starts from the previous release and forgets only its new requests", "",
             *_table(rows, method)]
    if one_shot_rows:
        lines += ["", "## One-shot: each cycle unlearns the whole cumulative forget set from the original target",
                  "", *_table(one_shot_rows, method)]
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict[str, Any]], one_shot_rows: list[dict[str, Any]], method: str) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    cycles = [row["cycle"] for row in rows]
    for attack in COLUMNS:
        axis.plot(cycles, [row[f"gap_{attack}_auc"] for row in rows], marker="o", label=f"AUC gap {attack}")
    axis.plot(cycles, [row["gap_forget_accuracy"] for row in rows], marker="s", label="forget accuracy gap")
    if one_shot_rows:  # dashed: the same requests unlearned from the target each cycle
        axis.plot(cycles, [row["gap_shadow_attack_auc"] for row in one_shot_rows], "k--", marker="o",
                  label="one-shot: AUC gap shadow_attack")
        axis.plot(cycles, [row["gap_forget_accuracy"] for row in one_shot_rows], "k:", marker="s",
                  label="one-shot: forget accuracy gap")
    axis.set_xlabel("cycle (sequential release)")
    axis.set_ylabel(f"|{method} - retrain|")
    axis.legend(fontsize=7)
    axis.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def _write(rows: list[dict[str, Any]], one_shot_rows: list[dict[str, Any]], dataset: str, method: str,
           plan: Plan) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    report = _report(rows, one_shot_rows, dataset, method, plan)
    atomic_write(OUTPUT / "drift.md", lambda tmp: tmp.write_text(report))
    png = _plot(rows, one_shot_rows, method)
    atomic_write(OUTPUT / "drift.png", lambda tmp: tmp.write_bytes(png))
    write_json(OUTPUT / "drift.json", {"hardware": hardware(), "dataset": dataset, "method": method,
                                       "command": plan.command, "rows": rows, "one_shot_rows": one_shot_rows})
    mlflow = tracking.configured_mlflow()
    with mlflow.start_run(run_name="sequential-drift", tags={"role": "benchmark", **tracking.code_identity()}):
        for prefix, chain in (("", rows), ("one_shot/", one_shot_rows)):
            for row in chain:
                mlflow.log_metrics({prefix + k: float(v) for k, v in row.items()
                                    if isinstance(v, (int, float)) and k != "cycle"}, step=row["cycle"])
        mlflow.log_artifacts(str(OUTPUT), "sequential_drift")
    print(report)
