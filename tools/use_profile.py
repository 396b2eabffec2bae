"""Overlay a profile (a partial params file) onto params.yaml, in place.

    python tools/use_profile.py profiles/tiny.yaml
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from remi.params import apply_profile
from remi.stage_main import run_entry_point


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    apply_profile(Path("params.yaml"), Path(sys.argv[1]))


if __name__ == "__main__":
    run_entry_point(main)
