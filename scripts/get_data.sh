#!/usr/bin/env bash
# Put the four Fashion-MNIST IDX files into data/raw/fashion_mnist and track them with DVC.
# Source, in order: files already there; the Debian package dataset-fashion-mnist (installed with
# apt-get when we are root); torchvision's download (machines with internet).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=data/raw/fashion_mnist
debian=/usr/share/datasets/fashion-mnist
files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)

have_all() {
  for name in "${files[@]}"; do [ -s "$1/$name" ] || return 1; done
}

if ! have_all "$dest"; then
  if ! have_all "$debian" && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "Installing the Debian package dataset-fashion-mnist ..."
    apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; } \
      || echo "apt-get could not install dataset-fashion-mnist; trying torchvision's download."
  fi
  mkdir -p "$dest"
  if have_all "$debian"; then
    cp "${files[@]/#/$debian/}" "$dest/"
  else
    .venv/bin/python - "$dest" <<'PY'
import shutil, sys, tempfile
from pathlib import Path
from torchvision.datasets import FashionMNIST
with tempfile.TemporaryDirectory() as root:
    FashionMNIST(root, download=True)
    for gz in (Path(root) / "FashionMNIST" / "raw").glob("*.gz"):
        shutil.copy(gz, sys.argv[1])
PY
  fi
fi
have_all "$dest" || { echo "Fashion-MNIST files still missing from $dest" >&2; exit 1; }
# Records the files' hashes in data/raw/fashion_mnist.dvc (unchanged when the files are the same).
.venv/bin/dvc add -q "$dest"
