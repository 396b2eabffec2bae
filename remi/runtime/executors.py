"""Where independent blocks of work run: in this process (the default) or as Ray tasks on a cluster.

Reference models (shadows) train in blocks that depend on nothing but their inputs, so they can train
anywhere. Which executor runs them is a property of the machine, like REMI_DEVICE, and not of the
experiment: a block's result depends on its seeds, data, recipe and thread count, never on the
process that computed it. So it is chosen by the environment, not by params.yaml, switching it does
not make DVC re-run a stage, and both executors write the same files (tests/test_executors.py).

    REMI_EXECUTOR   local (default) or ray
    RAY_ADDRESS     with ray: the cluster to use (`ray start --head` prints it); unset, a private Ray
                    instance is started on this machine for the stage and stopped after it
    REMI_RAY_CPUS   CPUs per task (default 1)
    REMI_RAY_GPUS   GPUs per task (default 0); a fraction shares a GPU, 0.25 = four tasks per GPU

A task with a GPU computes on it (Ray sets its CUDA_VISIBLE_DEVICES), a task without one on the CPU.
A task uses REMI_THREADS threads when it is set (the bytes then match a local run with the same
setting), else as many as it has CPUs: a task must not take its neighbours' cores. The worker
machines need this package installed (or shipped with Ray's runtime_env) and the same Python.
"""

import math
import os
import signal
from collections import deque
from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeVar

from remi.errors import UserError
from remi.runtime.device import DEVICE_ENV, THREADS_ENV, configure_threads

EXECUTOR_ENV = "REMI_EXECUTOR"
RAY_CPUS_ENV = "REMI_RAY_CPUS"
RAY_GPUS_ENV = "REMI_RAY_GPUS"
EXECUTORS = ("local", "ray")

Result = TypeVar("Result")


def executor_name() -> str:
    name = os.environ.get(EXECUTOR_ENV, "").strip() or "local"
    if name not in EXECUTORS:
        raise UserError(f"{EXECUTOR_ENV}={name!r} is not an executor; use one of {', '.join(EXECUTORS)} "
                        f"(unset means local).")
    return name


def runs_in_process() -> bool:
    """True when work runs in this process, so callbacks such as progress lines can reach it."""
    return executor_name() == "local"


def map_in_order(function: Callable[..., Result], items: Sequence[Any], **shared: Any) -> Generator[Result]:
    """`function(item, **shared)` for every item, yielded in the order of `items` as each is ready.

    `function` must be importable by name (a module-level function of this package) for the Ray
    executor, and `shared` picklable: it is sent to the cluster once, whatever the number of items.
    Close the generator (`contextlib.closing`) when the caller may stop early or fail: that cancels
    the tasks still running and stops a private Ray instance.
    """
    if executor_name() == "local":
        for item in items:
            yield function(item, **shared)
    else:
        yield from _map_on_ray(function, items, shared)


def _task_resources() -> tuple[float, float]:
    cpus = _number_from_env(RAY_CPUS_ENV, default=1.0, smallest=0.0, inclusive=False)
    gpus = _number_from_env(RAY_GPUS_ENV, default=0.0, smallest=0.0, inclusive=True)
    return cpus, gpus


def task_environment(cpus: float, gpus: float) -> dict[str, str]:
    """What a task's process needs to compute like a local run: its device (a GPU when it was given
    one) and its threads (REMI_THREADS when set here, else one per CPU it was given)."""
    return {DEVICE_ENV: "cuda" if gpus > 0 else "cpu",
            THREADS_ENV: os.environ.get(THREADS_ENV, "").strip() or str(max(1, math.floor(cpus)))}


def _number_from_env(name: str, default: float, smallest: float, inclusive: bool) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < smallest or (value == smallest and not inclusive):
        bound = f">= {smallest:g}" if inclusive else f"> {smallest:g}"
        raise UserError(f"{name}={text!r} must be a number {bound}; unset it for the default {default:g}.")
    return value


def _map_on_ray(function: Callable[..., Result], items: Sequence[Any], shared: dict[str, Any]) -> Generator[Result]:
    cpus, gpus = _task_resources()  # bad settings are reported before anything starts
    if not items:
        return  # nothing to train: no instance to start, no cluster to reach
    try:
        import ray
    except ImportError:
        raise UserError(f"{EXECUTOR_ENV}=ray needs Ray: pip install -e '.[ray]' (or unset {EXECUTOR_ENV} to "
                        f"train in this process).") from None
    environment = task_environment(cpus, gpus)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no telemetry, as for MLflow and DVC
    started_here = not ray.is_initialized()
    if started_here:
        _init_ray(ray)
    pending: deque[Any] = deque()
    try:
        _check_resources(ray.cluster_resources(), cpus, gpus)
        # Resources given to ray.remote itself (not .options): then Ray ends a GPU task's process after
        # the task, so the next task's CUDA_VISIBLE_DEVICES takes effect and no cached GPU memory stays.
        # Retries on a lost worker are left on: a block is deterministic, so a retry gives the same bytes.
        task: Any = ray.remote(num_cpus=cpus, num_gpus=gpus)(_run_in_task)
        shared_refs = {key: ray.put(value) for key, value in shared.items()}  # sent once, read by every task
        pending.extend(task.remote(function, item, environment, **shared_refs) for item in items)
        while pending:
            try:
                result = ray.get(pending[0])
            except ray.exceptions.RayTaskError as error:
                # The task's own exception, so a failure reads as in a local run; chained to Ray's error,
                # which carries the traceback inside the task.
                raise error.cause from error
            pending.popleft()  # released, so finished blocks do not stay in the object store
            yield result
    finally:
        try:
            for ref in pending:
                ray.cancel(ref, force=True)  # the rest, after a failure or an early exit
        finally:
            if started_here:
                ray.shutdown()


def _init_ray(ray: Any) -> None:
    """Connect to RAY_ADDRESS, or start a private instance for this stage (no dashboard)."""
    handler = signal.getsignal(signal.SIGTERM)
    address = os.environ.get("RAY_ADDRESS", "").strip()
    try:
        if address:
            ray.init(address=address)
        else:
            ray.init(address="local", include_dashboard=False)
    finally:
        # ray.init replaces the SIGTERM handler with its own sys.exit; the stage's handler ends MLflow
        # runs as FAILED and exits 143 (remi.pipeline.entry_point).
        signal.signal(signal.SIGTERM, handler)


def _check_resources(cluster: dict[str, float], cpus: float, gpus: float) -> None:
    """A task asking for more than the whole cluster has would wait forever: say so instead."""
    for name, wanted, setting in (("CPU", cpus, RAY_CPUS_ENV), ("GPU", gpus, RAY_GPUS_ENV)):
        if wanted > cluster.get(name, 0.0):
            raise UserError(f"{setting} asks for {wanted:g} {name}s per task, but the Ray cluster has "
                            f"{cluster.get(name, 0.0):g} in all; lower {setting} or add machines.")


def _run_in_task(function: Callable[..., Result], item: Any, environment: dict[str, str], **shared: Any) -> Result:
    os.environ.update(environment)
    configure_threads()
    return function(item, **shared)
