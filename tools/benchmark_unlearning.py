"""Seconds of each unlearning method, repeated in one process, and the ratio to retraining.

    python tools/benchmark_unlearning.py [--repeats 3]     (after `make run`; uses its artifacts)

Methods alternate within each repeat, so machine noise hits them alike; the script prints every
measurement and the median ratio. Run it from the repository root.
"""

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from remi.datasets import load_dataset
from remi.device import compute_device, describe
from remi.params import load_params
from remi.tasks import load_task
from remi.unlearning import run_method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    params = load_params()
    dataset = load_dataset(params["data"]["dataset"], params["data"]["raw_dir"])
    device = compute_device()
    methods = params["unlearn"]["methods"]
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(repeats):
        for method in methods:
            seconds[method].append(run_method(method, load_task(params, dataset, method, device))[1])
    print(f"device: {describe(device)}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    for method, values in seconds.items():
        ratios = [s / r for s, r in zip(values, seconds["retrain"], strict=True)]
        print(f"{method:10s} seconds {', '.join(f'{s:.2f}' for s in values)}  "
              f"ratio to retrain: median {statistics.median(ratios):.3f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
