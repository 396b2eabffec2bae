#!/bin/bash
# Stop targets that follow the draw, on top of the MNIST-5k raised-teacher profile (copy /tmp/w/mnist4), pipeline seeds 0-2
set -uo pipefail
export PATH=/work/main/.venv/bin:$PATH REMI_THREADS=2 MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1 GX_ANALYTICS_ENABLED=false
OUTD=/tmp/w/floor/targets; mkdir -p $OUTD
COPY=/tmp/w/mnist4
cd $COPY && export MLFLOW_TRACKING_URI=sqlite:///$COPY/mlflow.db
for k in 0 1 2; do
  python - "$k" <<'PY'
import sys, yaml
k = int(sys.argv[1]); p = yaml.safe_load(open("params.yaml"))
p["train"]["seed"] = k; p["forget"]["seed"] = k + 1; p["retrain"]["seed"] = k; p["remi"]["seed"] = k
assert p["remi"]["unseen_raise"] == 1.0 and p["remi"]["accuracy_tolerance"] == 0.0
yaml.safe_dump(p, open("params.yaml", "w"), sort_keys=False)
PY
  date +%s > $OUTD/seed$k.start
  python -m remi run > $OUTD/seed$k.run.log 2>&1; echo "run rc $?" >> $OUTD/seed$k.run.log
  python -m remi ablation --seeds 0 1 2 --ulira --variants default "stop target from the shadows" "stop target from the neighbours" > $OUTD/seed$k.abl.log 2>&1
  echo "abl rc $?" >> $OUTD/seed$k.abl.log
  cp reports/remi_ablation.md $OUTD/seed$k.md; cp metrics/remi_ablation.json $OUTD/seed$k.json
  date +%s > $OUTD/seed$k.end
done
echo done > $OUTD/DONE
