"""Run the pipeline once per seed with `dvc exp run` (looped, one after another, in the workspace),
and keep each seed's audit metrics for the comparison report.

    remi profile profiles/mnist_5k.yaml           # optional: pick the dataset / model
    remi seeds --seeds 0 1 2                      # -> metrics/seeds/<dataset>.json
    remi compare --seeds metrics/seeds/*.json     # -> reports/comparison.md

Seed k sets train.seed = k (the target's initialisation and batch order), forget.seed = 1 + k (which
samples are forgotten) and the seed of every method in unlearn.methods to k (retraining included).
The shadows and the attack model do not depend on these seeds, so they are trained once and reused.
Each run is a DVC experiment named <dataset>-seed<k> (`dvc exp show` lists them) under its own
MLflow parent run; it stops at the audit stage (the gate is a release decision, not a measurement).
Seed 0 reproduces the params file's own seeds.
"""

import subprocess
import sys
from pathlib import Path

import yaml

from remi.params_schema import Params
from remi.pipeline import tracking
from remi.pipeline.layout import METRICS_DIR, metrics_path
from remi.pipeline.params import load_params
from remi.pipeline.runner import run_under_parent_run
from remi.runtime.device import hardware
from remi.runtime.files import read_json, write_json


def seed_overrides(params: Params, seed: int) -> list[str]:
    """`dvc exp run -S` arguments for seed `seed`."""
    sets = {"train.seed": seed, "forget.seed": 1 + seed}
    sets |= {f"{method}.seed": seed for method in params.unlearn.methods}
    return [arg for key, value in sets.items() for arg in ("-S", f"{key}={value}")]


def run_seeds(seeds: list[int], output: Path | None = None) -> int:
    """One `dvc exp run` per seed, up to the audit; the audits go to `output` as each seed finishes."""
    params = load_params()
    dataset = params.data.dataset
    output = output or METRICS_DIR / "seeds" / f"{dataset}.json"
    runs = {}
    commit = tracking.code_identity()["git_commit"]
    for seed in seeds:
        name = f"{dataset}-seed{seed}"
        # A rerun replaces the experiment of the same name (`dvc exp run -f` would also force every stage).
        subprocess.run([sys.executable, "-m", "dvc", "exp", "remove", name], capture_output=True)
        command = [sys.executable, "-m", "dvc", "exp", "run", "--name", name, *seed_overrides(params, seed), "audit"]
        code = run_under_parent_run(command, f"dvc exp run {name}")
        if code:
            print(f"{name} failed (exit code {code}); seeds finished so far are in {output}", file=sys.stderr)
            return code
        runs[str(seed)] = read_json(metrics_path("audit"))
        write_json(output, {"dataset": dataset, "model": params.model.arch, "git_commit": commit,
                            "methods": params.unlearn.methods, "hardware": hardware(),
                            "seed_keys": "train.seed=k, forget.seed=1+k, <method>.seed=k",
                            "profile": yaml.safe_dump(params.model_dump(include={"data", "splits", "model", "train"}),
                                                      sort_keys=False),
                            "runs": runs})
    print(f"{len(runs)} seeds -> {output}")
    return 0
