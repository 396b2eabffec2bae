"""Seconds of one Adam step, torch's unfused update against its fused kernel, beside one training step
(forward and backward) of the pipeline's network, alone and stacked `shadows.train_together`-fold as the
vectorised shadows are (BENCHMARKS.md, "Fused Adam").

    [REMI_DEVICE=cuda] remi benchmark adam [--steps 200] [--repeats 3] [--out FILE.json]

The two updates alternate within each repeat, so machine noise hits them alike. What `remi` itself
uses is `remi.networks.training.adam` (fused where torch has the kernel); the unfused update is torch's
default, which the pipeline used before 2026-12-05.
"""

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import stack_module_state

from remi.data.datasets import load_dataset
from remi.networks.architectures import build_network
from remi.pipeline.params import load_params
from remi.runtime.device import compute_device, configure_threads, describe, synchronize
from remi.runtime.files import write_json


def benchmark_adam(steps: int, repeats: int, out: Path | None) -> None:
    threads = configure_threads()
    params = load_params()
    device = compute_device()
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    model = build_network(params.model, dataset.input_shape, dataset.num_classes).to(device)
    batch = params.train.batch_size
    inputs = dataset.inputs[:batch].to(device)
    labels = dataset.labels[:batch].to(device)
    together = params.shadows.train_together  # the shadows' vectorised block, as the pipeline trains it
    stacked, _ = stack_module_state([model] * together)
    weights = {"one model": list(model.parameters()), f"{together} stacked": list(stacked.values())}
    results: dict[str, dict[str, float]] = {}
    for name, tensors in weights.items():
        for weight in tensors:
            weight.grad = torch.randn_like(weight)
        seconds: dict[str, list[float]] = {"unfused": [], "fused": []}
        for _ in range(repeats):
            for kind in seconds:
                optimizer = torch.optim.Adam(tensors, lr=1e-4, fused=kind == "fused" or None)
                seconds[kind].append(_seconds_per_call(optimizer.step, steps, device))
        results[name] = {f"{kind}_ms": 1000 * statistics.median(values) for kind, values in seconds.items()}

    def train_step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(inputs), labels).backward()

    results["one model"]["forward_backward_ms"] = 1000 * _seconds_per_call(train_step, steps, device)
    print(f"{describe(device)}, {threads} threads, torch {torch.__version__}; {params.model.arch}, batch {batch}; "
          f"median of {repeats} repeats of {steps} steps")
    for name, timing in results.items():
        extra = (f"; forward+backward {timing['forward_backward_ms']:.2f} ms" if "forward_backward_ms" in timing
                 else "")
        print(f"{name:12s} Adam step: unfused {timing['unfused_ms']:.3f} ms, fused {timing['fused_ms']:.3f} ms"
              f"{extra}")
    if out:
        write_json(out, {"device": describe(device), "threads": threads, "torch": torch.__version__,
                       "arch": params.model.arch, "batch_size": batch, "stacked_models": together,
                       "steps": steps, "repeats": repeats, "milliseconds": results})


def _seconds_per_call(call: Callable[[], object], calls: int, device: torch.device) -> float:
    """Mean seconds of `call` over `calls` calls, after one untimed call (which pays lazy initialisation)."""
    call()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(calls):
        call()
    synchronize(device)
    return (time.perf_counter() - started) / calls
