"""Overlay a profile (a partial params file) onto params.yaml, in place.

    python tools/use_profile.py profiles/tiny.yaml
"""

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from remi.params import apply_profile


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    apply_profile(Path("params.yaml"), yaml.safe_load(Path(sys.argv[1]).read_text()))


if __name__ == "__main__":
    main()
