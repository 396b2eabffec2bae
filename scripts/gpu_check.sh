#!/usr/bin/env bash
# What a GPU session checks and measures (docs/devices.md, "GPU checks"), installing nothing: (1) the
# device tests on the GPU, (2) what each heavy import and each stage's module cost (`remi benchmark
# startup`), (3) the whole default pipeline with profiles/gpu.yaml, clean (shadows trained, not reused), in a copy of this
# project, and its per-stage profile, (4) vectorised against one-by-one reference models, (5) float32
# against bfloat16 mixed-precision training, (6) training cost per profile. About 6 minutes on one H200
# (measured once, before step 5 and the stages' imports in step 2 were added; not measured on a GPU
# since); each step has a time limit (below), so a step that hangs cannot take the others' time. Each
# step's output goes to OUT_DIR; OUT_DIR/gpu_check.json gathers every step's exit code and seconds and
# the JSON results of the steps that ran. A failing step is recorded and the next one runs.
# Usage: scripts/gpu_check.sh [OUT_DIR]   (default: $OUT if set, else reports/gpu_check)
#        GPU_CHECK_STEPS="device_tests pipeline" scripts/gpu_check.sh   (only the steps named)
# REMI_DEVICE defaults to cuda here; REMI_DEVICE=cpu runs the same steps on the CPU (slowly).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-${OUT:-$root/reports/gpu_check}}" && cd "${1:-${OUT:-$root/reports/gpu_check}}" && pwd)
export REMI_DEVICE=${REMI_DEVICE:-cuda} MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1 GX_ANALYTICS_ENABLED=false
# REMI_PYTHON: an interpreter that has the project's dependencies, e.g. a GPU image's own python3 with
# the missing packages on PYTHONPATH; default the project's .venv (`make setup`).
export REMI_PYTHON=${REMI_PYTHON:-$root/.venv/bin/python}
if ! "$REMI_PYTHON" -c "import dvc, mlflow, great_expectations, torch" 2>/dev/null; then
  echo "$REMI_PYTHON lacks the project's dependencies: run \`make setup\` first (this script installs nothing)" >&2
  exit 2
fi
remi() { "$REMI_PYTHON" -m remi "$@"; }
# shellcheck source=lib/project_copy.sh
source "$root/scripts/lib/project_copy.sh"

steps=()
step() {  # name, seconds, command...: runs the command (a function too) for at most that long, so one
  # that hangs cannot eat the others' time; logs to OUT_DIR/<name>.log, records exit code and seconds
  local name=$1 limit=$2 started code
  shift 2
  if [ -n "${GPU_CHECK_STEPS:-}" ] && [[ " $GPU_CHECK_STEPS " != *" $name "* ]]; then
    return  # GPU_CHECK_STEPS="a b" runs only the steps named
  fi
  started=$(date +%s.%N)
  timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" >"$out/$name.log" 2>&1
  code=$?
  steps+=("$name $code $("$REMI_PYTHON" -c "print(f'{$(date +%s.%N) - $started:.1f}')")")
  echo "$name: exit $code (log: $out/$name.log)"
}

# The copy lives outside OUT_DIR (it holds every model and the data); its metrics/ come back as
# OUT_DIR/pipeline_metrics, then it is deleted.
pipeline_copy=$(mktemp -d "${TMPDIR:-/tmp}/remi_gpu_check_pipeline.XXXXXX")
clean_pipeline() {
  project_copy "$root" "$pipeline_copy" && rm -rf "$pipeline_copy/models/shadows" "$pipeline_copy/models/online_shadows" \
    && (cd "$pipeline_copy" && remi profile profiles/gpu.yaml && remi run -f \
        && remi benchmark profile --out "$out/profile.json")
}

export -f remi clean_pipeline project_copy
export root out pipeline_copy
# Results of an earlier run in the same OUT_DIR must not pass for this one's.
rm -rf "$out"/{networks,vectorised,precision,profile,startup,gpu_check}.json "$out/pipeline_metrics"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$out/gpu.txt" 2>&1
else
  echo "none (no nvidia-smi)" >"$out/gpu.txt"
fi
cd "$root" || exit 2
step device_tests 90 "$REMI_PYTHON" -m pytest -q tests/test_device.py tests/test_vectorised_training.py
step startup 180 remi benchmark startup --repeats 1 --out "$out/startup.json"
step pipeline 420 clean_pipeline
step vectorised 80 remi benchmark vectorised --models 8 16 --epochs 5 --out "$out/vectorised.json"
step precision 90 remi benchmark precision --repeats 3 --out "$out/precision.json"
step networks 60 remi benchmark networks --out "$out/networks.json"
cp -r "$pipeline_copy/metrics" "$out/pipeline_metrics" 2>/dev/null
rm -rf "$pipeline_copy"

printf '%s\n' "${steps[@]}" | "$REMI_PYTHON" -c '
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
steps = {}
for line in sys.stdin.read().split("\n"):
    if line:
        name, code, seconds = line.split()
        steps[name] = {"exit_code": int(code), "seconds": float(seconds)}
results = {name: json.loads((out / f"{name}.json").read_text())
           for name in ("networks", "vectorised", "precision", "profile", "startup") if (out / f"{name}.json").exists()}
gpu = (out / "gpu.txt").read_text().strip() if (out / "gpu.txt").exists() else "unknown"
summary = {"gpu": gpu, "device": sys.argv[2], "steps": steps, "results": results}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(steps, indent=2))
' "$out" "$REMI_DEVICE"
