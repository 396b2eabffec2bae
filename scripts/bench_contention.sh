#!/usr/bin/env bash
# The whole default pipeline under contention (BENCHMARKS.md, "Threads under contention"): `remi run -f`
# in a copy of this project, (1) alone, (2) beside a CPU-bound busy loop, (3) beside a second copy
# running the same. The copies share this checkout's .venv; their MLflow stores and DVC caches are
# their own. Run on an otherwise idle machine, after `make run` (the copies keep its shadows).
# Usage: scripts/bench_contention.sh [WORK_DIR] [all|alone|busy|side]   (default: a new temporary
# directory, all three measurements; `side` runs only the two copies side by side)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
remi="$root/.venv/bin/remi"
export REMI_PYTHON="$root/.venv/bin/python"
unset REMI_THREADS  # the default policy is what is measured

# shellcheck source=lib/project_copy.sh
source "$root/scripts/lib/project_copy.sh"

timed_run() {  # copy, log file: prints the wall seconds of `remi run -f` there
  local started
  started=$(date +%s.%N)
  (cd "$work/$1" && "$remi" run -f >"$work/$2" 2>&1)
  python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')"
}

which=${2:-all}
project_copy "$root" "$work/a"
project_copy "$root" "$work/b"
if [ "$which" = all ] || [ "$which" = alone ]; then
  echo "alone:                  $(timed_run a alone.log) s"
fi
if [ "$which" = all ] || [ "$which" = busy ]; then
  python3 -c 'while True: pass' &
  busy=$!
  echo "beside a busy loop:     $(timed_run a busy.log) s"
  kill "$busy"
  wait "$busy" 2>/dev/null || true
fi
if [ "$which" = all ] || [ "$which" = side ]; then
  timed_run a side_a.log >"$work/side_a.seconds" &
  first=$!
  timed_run b side_b.log >"$work/side_b.seconds" &
  second=$!
  wait "$first" "$second"
  echo "two side by side:       $(cat "$work/side_a.seconds") s and $(cat "$work/side_b.seconds") s"
fi
grep -h "threads" "$work"/a/metrics/unlearn/*.json | sort | uniq -c | sed 's/^/  last run, unlearn /'
echo "logs in $work"
