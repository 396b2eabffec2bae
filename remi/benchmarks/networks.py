"""Seconds per training epoch of each registered network, with the pipeline's training recipe, to size
the profiles (e.g. whether a CIFAR-10 profile is a CPU or a GPU job), and how close that training comes
to the device's own matrix-multiply speed.

    [REMI_DEVICE=cuda] remi benchmark networks [--samples 2048] [--out FILE.json]

Inputs are random tensors of each dataset's shape (the time does not depend on the values); the
networks use the options in params.yaml. Prints seconds per epoch over `--samples` samples, the
extrapolation to one target training of each profile (target_train samples x train.epochs), and the
floating-point operations per second the training reached against those of one large float32 matrix
product on the same device and threads: training far below it has software to gain (kernels, launches,
Python); near it, only less computation or other hardware makes it faster. (With `train.precision:
bfloat16`, or with TF32 convolutions on a GPU, training can pass the float32 yardstick.)
"""

from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from remi.benchmarks.timing import timed
from remi.networks.architectures import build_network
from remi.networks.training import train_classifier
from remi.pipeline.params import overlay, read_params_file, validate
from remi.runtime.device import compute_device, configure_threads, describe
from remi.runtime.files import write_json

# profile -> (input shape, classes)
SHAPES = {"fashion_mnist": ((1, 28, 28), 10), "mnist_5k": ((1, 28, 28), 10), "letter": ((16,), 26),
          "cifar10": ((3, 32, 32), 10)}
PROFILES = ("params.yaml", "profiles/mnist_5k.yaml", "profiles/letter.yaml", "profiles/cifar10_resnet9.yaml",
            "profiles/cifar10_resnet18.yaml")


def training_flops_per_sample(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """Floating-point operations of one training step's forward and backward pass per sample: the matrix
    products and convolutions, as torch's FlopCounterMode counts them. The optimizer's and the activations'
    elementwise work is not counted: a few percent of the operations, if more of the time."""
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(inputs), labels).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(labels)


def matmul_flops_per_second(device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """What one large float32 matrix product reaches on `device`: the yardstick for training's rate."""
    left, right = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    timed(device, lambda: left @ right)  # warm-up: the kernel's first call pays its set-up
    _, seconds = timed(device, lambda: [left @ right for _ in range(repeats)])
    return 2 * size**3 * repeats / seconds


def benchmark_networks(samples: int, out: Path | None) -> None:
    """Print (and write to `out`, if given) each profile's training seconds per 1,000 samples and the
    share of the device's matrix-multiply rate that its training reaches."""
    threads = configure_threads()
    device = compute_device()
    base = read_params_file("params.yaml")
    name = describe(device)
    matmul_rate = matmul_flops_per_second(device)
    print(f"float32 matrix product: {matmul_rate / 1e9:.1f} GFLOP/s   [{name}, {threads} threads]", flush=True)
    timings: dict[str, dict[str, object]] = {}
    for profile in PROFILES:
        params = validate(base if profile == "params.yaml" else overlay(base, read_params_file(profile)))
        shape, classes = SHAPES[params.data.dataset]
        model = build_network(params.model, shape, classes).to(device)
        inputs = torch.randn(samples, *shape, device=device)
        labels = torch.randint(0, classes, (samples,), device=device)
        recipe = params.train.model_copy(update={"epochs": 1})
        train_classifier(model, inputs[: recipe.batch_size * 2], labels[: recipe.batch_size * 2], recipe, 0)
        _, seconds = timed(device, partial(train_classifier, model, inputs, labels, recipe, 0))
        per_sample = seconds / samples
        target = per_sample * params.splits.target_train * params.train.epochs
        batch = slice(0, recipe.batch_size)
        flops = training_flops_per_sample(model, inputs[batch], labels[batch])
        rate = flops / per_sample
        timings[profile] = {"arch": params.model.arch, "seconds_per_1000_samples": 1000 * per_sample,
                            "target_training_seconds": target, "training_flops_per_sample": flops,
                            "training_flops_per_second": rate, "share_of_matmul_rate": rate / matmul_rate}
        print(f"{profile:32s} {params.model.arch:9s} {1000 * per_sample:8.3f} s / 1000 samples; "
              f"one target ({params.splits.target_train} x {params.train.epochs} epochs): "
              f"{target:9.1f} s; {rate / 1e9:6.1f} GFLOP/s, {rate / matmul_rate:4.0%} of the matrix product's",
              flush=True)
    if out:
        results = {"device": name, "threads": threads, "torch": torch.__version__,
                   "matmul_flops_per_second": matmul_rate, "profiles": timings}
        write_json(out, results)
