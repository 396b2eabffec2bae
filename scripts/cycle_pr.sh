#!/usr/bin/env bash
# After `remi cycle` in CI: commit what the cycle changed (the ledger, the requests, dvc.lock, the
# metrics, the Markdown audit, and the starting model's manifest and .dvc file, never its weights) to a new
# branch, push it and open a pull request for review.
# Usage: scripts/cycle_pr.sh <exit code of remi cycle>. Needs git, and gh logged in (GH_TOKEN).
set -euo pipefail
code="${1:-none}"  # the exit code of remi cycle (none: it did not run)
branch="reunlearn/$(date -u +%Y%m%d-%H%M%S)"
git switch --quiet -c "$branch"
paths=()
for path in data/ledger.jsonl data/requests data/inbox data/rejected dvc.lock metrics reports/audit/audit.md \
    models/base/release.json models/base/weights.dvc models/base/.gitignore; do
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
  --body "remi cycle exit code $code (docs/operations.md). The ledger, dvc.lock, metrics and reports/audit/audit.md are in this branch; the HTML report is the run's artifact."
