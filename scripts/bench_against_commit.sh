#!/usr/bin/env bash
# A clean default pipeline at an earlier commit against the same at HEAD, on this machine, one after the
# other (BENCHMARKS.md, "Same VM: the issue's code against today's"): issue 10's 255 s was measured on
# a VM that is gone, so its goal can only be judged as a ratio on one machine. Each commit is checked out
# as a git worktree under WORK_DIR, given this checkout's raw data, and runs `dvc repro -f` (every stage,
# no run cache) with this checkout's .venv and each side's default threads and executor (REMI_THREADS
# unset: on an idle machine a stage takes every core, and since 2026-12-07 reference models train in
# one single-threaded worker process per core); then every MLflow run of each is listed with
# its start and duration, so stages that one side lacks can be taken out. Run on an otherwise idle
# machine, after `make setup`. The worktrees stay for inspection: `git worktree remove --force DIR`.
# Usage: scripts/bench_against_commit.sh OLD_COMMIT [WORK_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
old=${1:?usage: scripts/bench_against_commit.sh OLD_COMMIT [WORK_DIR]}
work=${2:-$(mktemp -d)}
dataset=$(cd "$root" && .venv/bin/python -c 'from remi.pipeline.params import load_params; print(load_params().data.dataset)')
# The earlier stage commands may be plain `python -m stages.<name>`: the .venv goes first on PATH.
export PATH="$root/.venv/bin:$PATH" REMI_PYTHON="$root/.venv/bin/python" REMI_PROGRESS=off
unset REMI_THREADS REMI_EXECUTOR REMI_WORKERS
export MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1 GX_ANALYTICS_ENABLED=false

mkdir -p "$work"
for side in old new; do
  commit=$([ "$side" = old ] && echo "$old" || git -C "$root" rev-parse HEAD)
  git -C "$root" worktree add --detach -q "$work/$side" "$commit"
  cp -r "$root/data/raw/$dataset" "$work/$side/data/raw/"
  started=$(date +%s.%N)
  code=0
  (cd "$work/$side" && dvc repro -f >"$work/$side.log" 2>&1) || code=$?
  seconds=$(python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')")
  echo "$side ($commit): dvc repro -f exit $code, $seconds s (log: $work/$side.log)"
  "$root/.venv/bin/python" - "$work/$side/mlflow.db" <<'EOF'
import sys

import mlflow

client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{sys.argv[1]}")
experiments = [e.experiment_id for e in client.search_experiments()]
runs = sorted(client.search_runs(experiments, max_results=1000), key=lambda run: run.info.start_time)
first = runs[0].info.start_time
for run in runs:
    took = ((run.info.end_time or run.info.start_time) - run.info.start_time) / 1000
    print(f"  {run.info.run_name:40s} starts at {(run.info.start_time - first) / 1000:7.1f} s, lasts {took:7.1f} s")
EOF
done
