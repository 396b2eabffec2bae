"""Where the networks compute: the CPU unless REMI_DEVICE names a GPU.

A device is a property of the machine, not of the experiment, so it comes from the environment and
never from params.yaml (docs/design.md, "Devices"). Random draws (batch order, noise, labels) always come
from CPU generators and are then moved, so a seed picks the same samples on every device.
Training data sits on the device for the whole fit; inference results come back to the CPU.
"""

import os
import platform
from pathlib import Path

import torch
from torch import nn

from remi.errors import UserError

DEVICE_ENV = "REMI_DEVICE"


class DeviceError(UserError):
    """REMI_DEVICE names a device this machine does not have."""


def compute_device() -> torch.device:
    """The device named by REMI_DEVICE (`cpu`, `cuda`, `cuda:1`, ...); the CPU when it is unset."""
    name = os.environ.get(DEVICE_ENV, "").strip() or "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise DeviceError(f"{DEVICE_ENV}={name!r} is not a device name ({error}). "
                          f"Use cpu, cuda or cuda:<index>, or unset {DEVICE_ENV} to use the CPU.") from None
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"{DEVICE_ENV}={name!r}: only cpu and cuda devices are supported.")
    if device.type == "cuda":
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if visible == 0:
            raise DeviceError(f"{DEVICE_ENV}={name!r}, but this machine has no usable CUDA GPU. "
                              f"Unset {DEVICE_ENV} to run on the CPU.")
        if device.index is not None and device.index >= visible:
            raise DeviceError(f"{DEVICE_ENV}={name!r}, but only {visible} CUDA GPU(s) are visible "
                              f"(cuda:0..cuda:{visible - 1}).")
    return device


def use_available_cores() -> None:
    """One intra-op thread per core this process may use: small convs gain nothing from more."""
    torch.set_num_threads(len(os.sched_getaffinity(0)))


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else the platform's processor or machine."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe(device: torch.device) -> str:
    """The hardware behind `device`, as timing records and MLflow tags name it."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{cpu_model()} x{len(os.sched_getaffinity(0))}"


def model_device(model: nn.Module) -> torch.device:
    """The device of `model`'s weights (the CPU for a model without any)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a wall clock read after it is honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
