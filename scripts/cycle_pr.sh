#!/usr/bin/env bash
# After `remi cycle` in CI: commit what the cycle changed (the ledger, the requests, dvc.lock, the
# metrics, the audit reports git tracks, and the starting model's manifest and .dvc file, never its weights)
# to a new branch, push it and open a pull request for review.
# A dvc.lock that a kill cut short (the job cancelled or out of time) is never committed: then only the
# ledger, the requests and the starting model go, and the next cycle re-runs what the lock would have held.
# Usage: scripts/cycle_pr.sh <exit code of remi cycle>. Needs git, and gh logged in (GH_TOKEN).
set -euo pipefail
code="${1:-none}"  # the exit code of remi cycle (none: it did not run or was killed)
branch="reunlearn/$(date -u +%Y%m%d-%H%M%S)-${GITHUB_RUN_ID:-$$}"  # the run id: one branch per run
git switch --quiet -c "$branch"
candidates=(data/ledger.jsonl data/requests data/inbox data/rejected
            models/base/release.json models/base/weights.dvc models/base/.gitignore)
what="The ledger, dvc.lock, metrics and the audit reports"
if bin/python -m remi.pipeline.dvc_locks >/dev/null; then
  candidates+=(dvc.lock metrics reports/audit reports/ulira.md)
else
  what="The ledger and the requests (dvc.lock was cut short, so it, the metrics and the reports are left out)"
  echo "$what." >&2
fi
paths=()
for path in "${candidates[@]}"; do
  if [ -e "$path" ] || git ls-files --error-unmatch -- "$path" >/dev/null 2>&1; then paths+=("$path"); fi
done
git add -A -- "${paths[@]}"
if git diff --cached --quiet; then
  echo "The cycle changed nothing to review."
  exit 0
fi
git -c user.name="remi-cycle" -c user.email="remi-cycle@users.noreply.github.com" \
  commit --quiet -m "Re-unlearning cycle $branch (remi cycle exit code $code)"
gh auth setup-git
git push --quiet origin "$branch"
gh pr create --head "$branch" --title "Re-unlearning cycle $branch (exit code $code)" \
  --body "remi cycle exit code $code (docs/operations.md). $what are in this branch; the HTML report is also the run's artifact. Merge it before the next cycle: a cycle whose ledger is behind the registry stops (exit 2)."
