#!/usr/bin/env bash
# What a GPU session checks and measures (docs/devices.md, "GPU checks"), meant to finish within 8
# minutes on one H100/H200, installing nothing: (1) the device tests on the GPU, (2) training cost per
# profile, (3) vectorised against one-by-one reference models, (4) the whole default pipeline, clean
# (shadows trained, not reused), in a copy of this project, and its per-stage profile. Each step's
# output goes to OUT_DIR; OUT_DIR/gpu_check.json gathers every step's exit code and seconds and
# the steps' own JSON results. A failing step is recorded and the next one still runs.
# Usage: scripts/gpu_check.sh [OUT_DIR]   (default: $OUT if set, else reports/gpu_check)
# REMI_DEVICE defaults to cuda here; REMI_DEVICE=cpu runs the same steps on the CPU (slowly).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-${OUT:-$root/reports/gpu_check}}" && cd "${1:-${OUT:-$root/reports/gpu_check}}" && pwd)
export REMI_DEVICE=${REMI_DEVICE:-cuda} MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1 GX_ANALYTICS_ENABLED=false
export REMI_PYTHON="$root/.venv/bin/python"
remi="$root/.venv/bin/remi"
if [ ! -x "$remi" ]; then
  echo "no $remi: run \`make setup\` first (this script installs nothing)" >&2
  exit 2
fi
# shellcheck source=lib/project_copy.sh
source "$root/scripts/lib/project_copy.sh"

steps=()
step() {  # name, command...: runs the command, logs to OUT_DIR/<name>.log, records code and seconds
  local name=$1 started code
  shift
  started=$(date +%s.%N)
  "$@" >"$out/$name.log" 2>&1
  code=$?
  steps+=("$name $code $(python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')")")
  echo "$name: exit $code (log: $out/$name.log)"
}

pipeline_copy="$out/pipeline"
clean_pipeline() {
  project_copy "$root" "$pipeline_copy" && rm -rf "$pipeline_copy/models/shadows" "$pipeline_copy/models/online_shadows" \
    && (cd "$pipeline_copy" && "$remi" run -f && "$remi" benchmark profile --out "$out/profile.json")
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$out/gpu.txt" 2>&1
cd "$root" || exit 2
step device_tests "$REMI_PYTHON" -m pytest -q tests/test_device.py tests/test_vectorised_training.py
step networks "$remi" benchmark networks --out "$out/networks.json"
step vectorised "$remi" benchmark vectorised --models 8 16 --epochs 5 --out "$out/vectorised.json"
step pipeline clean_pipeline
rm -rf "$pipeline_copy/.dvc/cache"  # the copy's cache holds every model: not a result

printf '%s\n' "${steps[@]}" | "$REMI_PYTHON" -c '
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
steps = {}
for line in sys.stdin.read().split("\n"):
    if line:
        name, code, seconds = line.split()
        steps[name] = {"exit_code": int(code), "seconds": float(seconds)}
results = {name: json.loads((out / f"{name}.json").read_text())
           for name in ("networks", "vectorised", "profile") if (out / f"{name}.json").exists()}
gpu = (out / "gpu.txt").read_text().strip() if (out / "gpu.txt").exists() else "unknown"
summary = {"gpu": gpu, "device": sys.argv[2], "steps": steps, "results": results}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(steps, indent=2))
' "$out" "$REMI_DEVICE"
