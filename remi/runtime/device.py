"""Where the networks compute: the CPU unless REMI_DEVICE names a GPU, with how many threads.

A device is a property of the machine, not of the experiment, so it comes from the environment and
never from params.yaml (docs/design.md, "Devices"). Random draws (batch order, noise, labels) always come
from CPU generators and are then moved, so a seed picks the same samples on every device.
Training data sits on the device for the whole fit; inference results come back to the CPU.
"""

import os
import platform
import re
import time
from pathlib import Path

import torch
from torch import nn

from remi.errors import UserError

DEVICE_ENV = "REMI_DEVICE"
THREADS_ENV = "REMI_THREADS"
LOADAVG = Path("/proc/loadavg")
OWN_TASKS = Path("/proc/self/task")
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
MEMINFO = Path("/proc/meminfo")
CGROUP_MEMORY_MAX = Path("/sys/fs/cgroup/memory.max")
CGROUP_MEMORY_CURRENT = Path("/sys/fs/cgroup/memory.current")


class DeviceError(UserError):
    """REMI_DEVICE names a device this machine does not have."""


def compute_device() -> torch.device:
    """The device named by REMI_DEVICE (`cpu`, `cuda`, `cuda:1`, ...); the CPU when it is unset. `cuda`
    comes back with its index (the current GPU's), as tensors on it report their device."""
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
        if device.index is None:  # a tensor reports cuda:0, and torch.device("cuda") != torch.device("cuda:0")
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def configure_threads() -> int:
    """Set torch's intra-op threads for this process and return how many.

    REMI_THREADS, when set, decides. Otherwise one thread per CPU this process may use that no other
    process keeps busy right now. Why not simply one per core (measured, `remi benchmark threads`,
    BENCHMARKS.md): on the 2-core machine beside one busy process, retraining with 2 threads did not
    finish in 120 s (8 s idle) and ReMI took 61x its idle time, because every parallel region waits
    for the thread that shares its core; with 1 thread both ran at their idle speed. OpenMP's passive
    wait only softened it (2.9x) and cost idle speed. The price of choosing by load: the thread count
    changes how sums are split, so a run on a busy machine gives other model bytes than on an idle one
    (within float noise); set REMI_THREADS to get identical bytes whatever the load.
    """
    threads = threads_override() or max(1, available_cpus() - cpus_busy_elsewhere())
    torch.set_num_threads(threads)
    _rebalance_schedule["next"] = time.monotonic() + REBALANCE_EVERY_SECONDS
    return threads


def threads_override() -> int | None:
    """REMI_THREADS as a number of threads, None when unset; a UserError when it is not 1 to 9999."""
    return count_from_env(THREADS_ENV, "threads", "unset it to choose from the free CPUs")


def count_from_env(name: str, what: str, when_unset: str) -> int | None:
    """The environment variable `name` as a count of `what`, None when unset; a UserError saying what
    unsetting it does (`when_unset`) when it is not 1 to 9999 in ASCII digits (`str.isdigit` would let '²'
    through to a ValueError, and a 20-digit number to an overflow)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    if not re.fullmatch(r"[1-9][0-9]{0,3}", text):
        raise UserError(f"{name}={text[:40]!r} is not a whole number of {what} from 1 to 9999; {when_unset}.")
    return int(text)


REBALANCE_EVERY_SECONDS = 2.0
_rebalance_schedule = {"next": 0.0}


def rebalance_threads() -> None:
    """Re-make `configure_threads`'s choice during a computation (training loops call it each epoch;
    it looks at most every REBALANCE_EVERY_SECONDS, for about 30 ms).

    Deciding once per process is not enough: two pipelines whose stages start at the same moment each
    see a free machine, take every core and then collapse together (measured: BENCHMARKS.md, "Threads
    under contention"). Looking again while computing, each sees the other's running threads, steps
    down to the CPUs left, and steps back up when the neighbour is gone. REMI_THREADS, when set, fixes
    the count and this does nothing.
    """
    now = time.monotonic()
    if os.environ.get(THREADS_ENV, "").strip() or now < _rebalance_schedule["next"]:
        return
    _rebalance_schedule["next"] = now + REBALANCE_EVERY_SECONDS
    threads = max(1, available_cpus() - cpus_busy_elsewhere(samples=3, interval_seconds=0.01))
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)


def available_cpus() -> int:
    """CPUs this process may run on: its affinity, capped by a cgroup v2 CPU quota (a container's
    limit, which the affinity does not show)."""
    cpus = len(os.sched_getaffinity(0))
    quota = CGROUP_CPU_MAX.read_text().split() if CGROUP_CPU_MAX.exists() else ["max"]
    if quota[0] != "max":
        cpus = min(cpus, max(1, int(quota[0]) // int(quota[1])))
    return cpus


def available_memory() -> int | None:
    """Bytes of memory that new processes may take now: the kernel's MemAvailable, capped by the room left
    under a cgroup v2 memory limit (a container's, which /proc/meminfo does not show); None where neither can
    be read (not Linux)."""
    room = []
    if MEMINFO.exists():
        room += [int(line.split()[1]) * 1024 for line in MEMINFO.read_text().splitlines()
                 if line.startswith("MemAvailable:")]
    if CGROUP_MEMORY_MAX.exists() and CGROUP_MEMORY_CURRENT.exists():
        limit = CGROUP_MEMORY_MAX.read_text().strip()
        if limit != "max":
            room.append(max(0, int(limit) - int(CGROUP_MEMORY_CURRENT.read_text())))
    return min(room) if room else None


def cpus_busy_elsewhere(samples: int = 5, interval_seconds: float = 0.02) -> int:
    """How many CPUs other processes keep busy now: the kernel's count of runnable tasks
    (/proc/loadavg) less this process's own runnable threads, at its lowest over a few samples, so
    that a task that runs for a moment is not counted but a CPU-bound one is. 0 where /proc is
    missing."""
    if not LOADAVG.exists():
        return 0
    counts = []
    for _ in range(samples):
        # Own threads counted on both sides of the kernel's count, the fewer subtracted: a thread of
        # ours that changes state in between must not hide a neighbour (too few threads cost less
        # than a collapse).
        before = own_running_threads()
        running = int(LOADAVG.read_text().split()[3].split("/")[0])
        counts.append(running - min(before, own_running_threads()))
        time.sleep(interval_seconds)
    return max(0, min(counts))


def own_running_threads() -> int:
    """This process's threads that are running or runnable (state R in /proc/self/task/*/stat): the
    caller itself, and torch's worker threads when they compute or spin."""
    running = 0
    for stat in OWN_TASKS.glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the thread ended while we looked
            continue
        running += text[text.rindex(")") + 2] == "R"
    return max(1, running)


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else the platform's processor or machine."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def hardware() -> str:
    """CPU model and the cores this process may use, and the GPU card when REMI_DEVICE names one: the
    machine as reports name it."""
    device = compute_device()
    gpu = f"GPU {describe(device).removeprefix('cuda:')}" if device.type == "cuda" else "no GPU used"
    return f"{cpu_model()}, {len(os.sched_getaffinity(0))} cores, {gpu}"


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
