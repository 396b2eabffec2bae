"""Seconds per training epoch of each registered network, with the pipeline's training recipe, to size
the profiles (e.g. whether a CIFAR-10 profile is a CPU or a GPU job).

    [REMI_DEVICE=cuda] remi benchmark networks [--samples 2048] [--out FILE.json]

Inputs are random tensors of each dataset's shape (the time does not depend on the values); the
networks use the options in params.yaml. Prints seconds per epoch over `--samples` samples and the
extrapolation to one target training of each profile (target_train samples x train.epochs).
"""

import time
from pathlib import Path

import torch

from remi.networks.architectures import build_network
from remi.networks.training import train_classifier
from remi.pipeline.params import overlay, read_params_file, validate
from remi.runtime.device import compute_device, configure_threads, describe, synchronize
from remi.runtime.files import write_json

# profile -> (input shape, classes)
SHAPES = {"fashion_mnist": ((1, 28, 28), 10), "mnist_5k": ((1, 28, 28), 10), "letter": ((16,), 26),
          "cifar10": ((3, 32, 32), 10)}
PROFILES = ("params.yaml", "profiles/mnist_5k.yaml", "profiles/letter.yaml", "profiles/cifar10_resnet9.yaml",
            "profiles/cifar10_resnet18.yaml")


def benchmark_networks(samples: int, out: Path | None) -> None:
    """Print (and write to `out`, if given) each profile's training seconds per 1,000 samples."""
    configure_threads()
    device = compute_device()
    base = read_params_file("params.yaml")
    name = describe(device)
    timings: dict[str, dict[str, object]] = {}
    for profile in PROFILES:
        params = validate(base if profile == "params.yaml" else overlay(base, read_params_file(profile)))
        shape, classes = SHAPES[params.data.dataset]
        model = build_network(params.model, shape, classes).to(device)
        inputs = torch.randn(samples, *shape, device=device)
        labels = torch.randint(0, classes, (samples,), device=device)
        recipe = params.train.model_copy(update={"epochs": 1})
        train_classifier(model, inputs[: recipe.batch_size * 2], labels[: recipe.batch_size * 2], recipe, 0)
        synchronize(device)
        started = time.perf_counter()
        train_classifier(model, inputs, labels, recipe, 0)
        synchronize(device)
        per_sample = (time.perf_counter() - started) / samples
        target = per_sample * params.splits.target_train * params.train.epochs
        timings[profile] = {"arch": params.model.arch, "seconds_per_1000_samples": 1000 * per_sample,
                                        "target_training_seconds": target}
        print(f"{profile:32s} {params.model.arch:9s} {1000 * per_sample:8.3f} s / 1000 samples; "
              f"one target ({params.splits.target_train} x {params.train.epochs} epochs): "
              f"{target:9.1f} s   [{name}]", flush=True)
    if out:
        results = {"device": name, "torch": torch.__version__, "profiles": timings}
        write_json(out, results)
