"""Seconds of each unlearning method, repeated in one process, and the ratio to retraining.

    remi benchmark unlearning [--repeats 3]     (after `remi run`; uses its artifacts)

Methods alternate within each repeat, so machine noise hits them alike; the script prints every
measurement and the median ratio. Run it from the repository root.
"""

import statistics

import torch

from remi.data.datasets import load_dataset
from remi.pipeline.params import load_params
from remi.pipeline.tasks import load_task
from remi.runtime.device import compute_device, configure_threads, describe
from remi.unlearning import run_method


def benchmark_unlearning(repeats: int) -> None:
    """Time every method in params.yaml `repeats` times, alternating, and print the ratios to retrain."""
    configure_threads()
    params = load_params()
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    device = compute_device()
    methods = params.unlearn.methods
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

