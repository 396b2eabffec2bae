"""Mark KILLED the MLflow runs this host's killed pipeline processes left RUNNING.

    python tools/mlflow_cleanup.py

Every stage and pipeline run does this on start; this is the same step on demand (e.g. before
reading the runs in the UI after a machine crashed). Runs of other hosts are left alone: their
processes cannot be checked from here.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from remi import tracking
from remi.stage_main import run_entry_point


def main() -> None:
    reaped = tracking.reap_orphaned_runs()
    print(f"Marked {len(reaped)} run(s) KILLED" + (f": {', '.join(reaped)}" if reaped else "."))


if __name__ == "__main__":
    run_entry_point(main)
