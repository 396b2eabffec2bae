"""Seconds to train K reference models one by one, as one vectorised computation and (on a CPU) one by
one in worker processes, with the pipeline's recipe and network on the pipeline's data (BENCHMARKS.md,
"Vectorised reference models", "Reference models in worker processes").

    [REMI_DEVICE=cuda] remi benchmark vectorised [--models 8 16] [--epochs 5] [--out FILE.json]

Each model trains on its own random half-pool-sized sample set, as a shadow does. `--epochs` shortens
the recipe to keep the benchmark short (the seconds scale with epochs); the models are the same ones
the pipeline would train otherwise. Also reports the largest weight difference between the first two
ways, the float tolerance they agree within. The worker processes are those of the pipeline's executor
(remi.runtime.executors: as many as the free CPUs hold, their start-up on the clock); run it with
REMI_THREADS unset, or the workers take REMI_THREADS threads each and fewer of them fit.
"""

from contextlib import closing
from functools import partial
from pathlib import Path

import torch
from torch import nn

from remi.benchmarks.timing import timed
from remi.data.datasets import load_dataset
from remi.errors import UserError
from remi.networks.architectures import build_network
from remi.networks.training import seeded_network, train_classifier
from remi.networks.vectorised import Samples, can_vectorise, train_classifiers
from remi.params_schema import Train
from remi.pipeline.params import load_params
from remi.runtime.device import compute_device, configure_threads, describe
from remi.runtime.executors import map_in_order, workers_and_threads
from remi.runtime.files import write_json


def benchmark_vectorised(model_counts: list[int], epochs: int, out: Path | None) -> None:
    threads = configure_threads()
    params = load_params()
    device = compute_device()
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    recipe = params.train.model_copy(update={"epochs": epochs})
    samples = params.splits.shadow_pool // 2

    build = partial(build_network, params.model, dataset.input_shape, dataset.num_classes)  # picklable

    if not can_vectorise(build()):
        raise UserError(f"{params.model.arch} has buffers or dropout, so it trains one by one only: "
                        "run this benchmark on a profile with small_cnn or mlp")
    generator = torch.Generator().manual_seed(0)
    name = describe(device)
    print(f"{params.model.arch} on {params.data.dataset}: {samples} samples per model, {epochs} epochs of batch "
          f"{recipe.batch_size}; {name}, {threads} threads", flush=True)
    _warm_up(build, dataset, recipe, device)
    rows = []
    for count in model_counts:
        data = [_on(device, dataset.subset(torch.randperm(len(dataset.labels), generator=generator)[:samples]))
                for _ in range(count)]
        row = _compare(build, data, recipe, device)
        rows.append(row)
        in_workers = "" if "workers" not in row else (
            f"; {row['workers']} worker processes of {row['worker_threads']} threads "
            f"{row['processes_seconds']:7.2f} s, x{row['processes_speed_up']:.2f}")
        print(f"{count:3d} models: one by one {row['one_by_one_seconds']:7.2f} s, vectorised "
              f"{row['vectorised_seconds']:7.2f} s, speed-up x{row['speed_up']:.2f}; largest weight difference "
              f"{row['max_weight_difference']:.1e}{in_workers}", flush=True)
    if out:
        write_json(out, {"device": name, "threads": threads, "torch": torch.__version__,
                       "arch": params.model.arch, "dataset": params.data.dataset, "epochs": epochs,
                       "samples_per_model": samples, "rows": rows})


def _on(device: torch.device, samples: Samples) -> Samples:
    return samples[0].to(device), samples[1].to(device)


def _compare(build, data: list[Samples], recipe, device: torch.device) -> dict[str, float]:
    seeds = list(range(len(data)))
    alone, alone_seconds = timed(device, lambda: [
        train_classifier(seeded_network(build, s).to(device), *d, recipe, s) for s, d in zip(seeds, data, strict=True)])
    together, together_seconds = timed(device, lambda: train_classifiers(
        [seeded_network(build, s).to(device) for s in seeds], data, recipe, seeds))
    gap = max((a - b).abs().max().item() for one, other in zip(alone, together, strict=True)
              for a, b in zip(one.parameters(), other.parameters(), strict=True))
    row = {"models": len(data), "one_by_one_seconds": alone_seconds, "vectorised_seconds": together_seconds,
           "speed_up": alone_seconds / together_seconds, "max_weight_difference": gap}
    if device.type == "cpu":  # on a GPU the pipeline keeps its blocks in one process (remi.runtime.executors)
        workers, threads = workers_and_threads(len(data))

        def in_workers() -> list[nn.Module]:
            with closing(map_in_order(_train_one, seeds, "processes", build=build, data=data, recipe=recipe)) as models:
                return list(models)

        _, processes_seconds = timed(device, in_workers)
        row |= {"workers": workers, "worker_threads": threads, "processes_seconds": processes_seconds,
                "processes_speed_up": alone_seconds / processes_seconds}
    return row


def _train_one(seed: int, *, build, data: list[Samples], recipe: Train) -> nn.Module:
    """Model `seed` of the one-by-one way, in a worker process (module-level, so a worker can import it)."""
    return train_classifier(seeded_network(build, seed), *data[seed], recipe, seed)


def _warm_up(build, dataset, recipe, device: torch.device) -> None:
    """One short run of each way, so neither clock pays for first-call set-up (kernels, allocator)."""
    short = recipe.model_copy(update={"epochs": 1})
    data = [_on(device, (dataset.inputs[: 2 * recipe.batch_size], dataset.labels[: 2 * recipe.batch_size]))] * 2
    train_classifier(build().to(device), *data[0], short, 0)
    train_classifiers([build().to(device) for _ in data], data, short, [0, 1])
