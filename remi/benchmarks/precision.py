"""Seconds of one training epoch in float32 and in bfloat16 mixed precision (`train.precision`), for one
network (target, retraining) and for a block of reference models (shadows), stacked and one by one,
alternating the two precisions within each repeat so machine noise hits both alike.

    [REMI_DEVICE=cuda] remi benchmark precision [--repeats 3] [--out FILE.json]

The pipeline's network, recipe and data: one network on target_train samples, and
`shadows.train_together` networks on half of shadow_pool samples each, as the shadows stage trains them
(stacked) and as it would with `train_together: 1` (one by one).
"""

import statistics
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from remi.benchmarks.timing import timed
from remi.catalog import PRECISIONS
from remi.data.datasets import load_dataset
from remi.networks.architectures import build_network
from remi.networks.training import seeded_network, train_classifier
from remi.networks.vectorised import Samples, train_each
from remi.params_schema import Train
from remi.pipeline.params import load_params
from remi.runtime.device import compute_device, configure_threads, describe
from remi.runtime.files import write_json


def benchmark_precision(repeats: int, out: Path | None) -> None:
    threads = configure_threads()
    params = load_params()
    device = compute_device()
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    generator = torch.Generator().manual_seed(0)

    def samples(count: int) -> Samples:
        inputs, labels = dataset.subset(torch.randperm(len(dataset.labels), generator=generator)[:count])
        return inputs.to(device), labels.to(device)

    def build(seed: int) -> torch.nn.Module:
        return seeded_network(lambda: build_network(params.model, dataset.input_shape, dataset.num_classes),
                              seed).to(device)

    together = params.shadows.train_together
    target_data = samples(params.splits.target_train)
    shadow_data = [samples(params.splits.shadow_pool // 2) for _ in range(together)]
    workloads: dict[str, Callable[[Train], object]] = {
        "one network": lambda recipe: train_classifier(build(0), *target_data, recipe, 0),
        f"{together} stacked networks": lambda recipe: train_each(
            [build(k) for k in range(together)], shadow_data, recipe, list(range(together))),
        # Stacked networks' convolutions become grouped ones, whose kernels may gain less from bfloat16.
        f"{together} networks one by one": lambda recipe: [
            train_classifier(build(k), *data, recipe, k) for k, data in enumerate(shadow_data)],
    }
    name = describe(device)
    print(f"{params.model.arch} on {params.data.dataset}, one epoch of batch {params.train.batch_size}; {name}, "
          f"{threads} threads", flush=True)
    seconds: dict[str, dict[str, list[float]]] = {work: {p: [] for p in PRECISIONS} for work in workloads}
    for repeat in range(repeats + 1):  # the first round warms both paths up (kernels, allocator) untimed
        for work, train in workloads.items():
            # Which precision goes first alternates too: neither always runs on a just-warmed cache.
            for precision in PRECISIONS if repeat % 2 else PRECISIONS[::-1]:
                recipe = params.train.model_copy(update={"epochs": 1, "precision": precision})
                _, elapsed = timed(device, partial(train, recipe))
                if repeat:
                    seconds[work][precision].append(elapsed)
    results = {}
    for work, by_precision in seconds.items():
        medians = {p: statistics.median(values) for p, values in by_precision.items()}
        results[work] = {"seconds": by_precision, "median_seconds": medians,
                         "speed_up": medians["float32"] / medians["bfloat16"]}
        print(f"{work:22s} float32 {', '.join(f'{s:.2f}' for s in by_precision['float32'])} s; bfloat16 "
              f"{', '.join(f'{s:.2f}' for s in by_precision['bfloat16'])} s; median speed-up "
              f"x{results[work]['speed_up']:.2f}", flush=True)
    if out:
        write_json(out, {"device": name, "threads": threads, "torch": torch.__version__, "arch": params.model.arch,
                         "dataset": params.data.dataset, "repeats": repeats, "workloads": results})
