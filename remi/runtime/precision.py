"""The arithmetic that training runs in: float32, or bfloat16 mixed precision where the hardware has it.

`train.precision` lives in params.yaml, not in the environment as the device does, because it changes
the trained models (the rounding of every forward pass) and so belongs to the experiment. With
`bfloat16` the forward passes and the loss run under `torch.autocast`, while the weights, their
gradients and Adam's state stay float32; inference (the audit's signals) is always float32.

A CPU without bfloat16 instructions (AVX512-BF16 or AMX-BF16) converts in software and computes in
float32 anyway, so bfloat16 could only add work there: such a device is refused, with the way out.
"""

import contextlib
from pathlib import Path

import torch

from remi.errors import UserError

CPU_INFO = Path("/proc/cpuinfo")


class PrecisionError(UserError):
    """train.precision asks for arithmetic this device does not do natively."""


def has_native_bfloat16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if CPU_INFO.exists():
        # torch's own check (`torch.ops.mkldnn._is_mkldnn_bf16_supported`) accepts any AVX-512 core,
        # bfloat16 instructions or not; the kernel's CPU flags say which.
        flags = next((line.split(":", 1)[1].split() for line in CPU_INFO.read_text().splitlines()
                      if line.startswith("flags")), [])
        return bool({"avx512_bf16", "amx_bf16"} & set(flags))
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def training_precision(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context a training step's forward pass and loss run in."""
    if precision == "float32":
        return contextlib.nullcontext()
    if not has_native_bfloat16(device):
        raise PrecisionError(f"train.precision = {precision}, but this {device.type} has no bfloat16 "
                             f"arithmetic (it would convert in software and gain nothing); set train.precision "
                             f"to float32.")
    return torch.autocast(device.type, dtype=torch.bfloat16)
