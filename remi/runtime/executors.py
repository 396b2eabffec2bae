"""Where independent blocks of work run: in this process, in worker processes on this machine (the
default on a CPU with two or more free cores), or as Ray tasks on a cluster.

Reference models (shadows) train in blocks that depend on nothing but their inputs, so they can train
anywhere. Which executor runs them is a property of the machine, like REMI_DEVICE, and not of the
experiment: a block's result depends on its seeds, data, recipe and thread count, never on the
process that computed it. So it is chosen by the environment, not by params.yaml, switching it does
not make DVC re-run a stage, and with REMI_THREADS set every executor writes the same files
(tests/test_executors.py).

    REMI_EXECUTOR   auto (default: processes on a CPU with room for two workers, else local), local,
                    processes or ray
    REMI_WORKERS    with processes: how many worker processes (default: as many as the free CPUs hold,
                    at REMI_THREADS threads each, one when it is unset, and the free memory holds, at
                    WORKER_MEMORY each)
    RAY_ADDRESS     with ray: the cluster to use (`ray start --head` prints it); unset, a private Ray
                    instance is started on this machine for the stage and stopped after it
    REMI_RAY_CPUS   CPUs per task (default 1)
    REMI_RAY_GPUS   GPUs per task (default 0); a fraction shares a GPU, 0.25 = four tasks per GPU

Why worker processes on one machine: the reference models are small networks whose steps a second
torch thread speeds up far less than twice. On the 2-core machine two one-thread processes train four
models in the time one two-thread process trains about three (BENCHMARKS.md, "Reference models in worker
processes"). A worker uses REMI_THREADS threads when it is set (the bytes then match a local run with the
same setting), else its share of the CPUs; it computes on REMI_DEVICE, as the stage would. The tensors
the blocks share (the dataset) reach the workers through shared memory, one copy for all of them (torch
registers that with multiprocessing's pickler); so auto takes worker processes only when they fit the
free shared memory, which a container may keep small (Docker's default /dev/shm is 64 MB).

A task with a GPU computes on it (Ray sets its CUDA_VISIBLE_DEVICES), a task without one on the CPU.
A task uses REMI_THREADS threads when it is set (the bytes then match a local run with the same
setting), else as many as it has CPUs: a task must not take its neighbours' cores. The worker
machines need this package installed (or shipped with Ray's runtime_env) and the same Python.
"""

import ctypes
import dataclasses
import importlib.util
import math
import multiprocessing
import os
import shutil
import signal
import sys
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

import torch

from remi.errors import UserError
from remi.runtime.device import (
    DEVICE_ENV,
    THREADS_ENV,
    available_cpus,
    available_memory,
    compute_device,
    configure_threads,
    count_from_env,
    cpus_busy_elsewhere,
    threads_override,
)

EXECUTOR_ENV = "REMI_EXECUTOR"
RAY_CPUS_ENV = "REMI_RAY_CPUS"
RAY_GPUS_ENV = "REMI_RAY_GPUS"
RAY_MISSING = (f"{EXECUTOR_ENV}=ray needs Ray: pip install -e '.[ray]' (or unset {EXECUTOR_ENV} to train in this "
               "process).")
WORKERS_ENV = "REMI_WORKERS"
PR_SET_PDEATHSIG = 1  # prctl option, <linux/prctl.h>
EXECUTORS = ("auto", "local", "processes", "ray")
SHARED_MEMORY = Path("/dev/shm")  # where torch's shared tensors live on Linux (shm_open)
# Room kept free beyond the shared tensors: the blocks' results come back through shared memory too
# (a default Fashion-MNIST shadow: 1.6 MB of weights and 1.1 MB of outputs on its pool).
SHARED_MEMORY_HEADROOM = 16 << 20
ENLARGE_SHARED_MEMORY = f"docker run --shm-size=1g; in Kubernetes a memory-backed emptyDir on {SHARED_MEMORY}"
# Memory a worker takes of its own. A default Fashion-MNIST shadow's worker peaked at 530 MiB of private memory
# (RssAnon: torch, its pool's samples, the network and its outputs; the dataset it shares is counted once, in
# shared memory), BENCHMARKS.md "Memory per worker"; the rest of a GiB is room for larger pools and networks.
# Without this cap a many-core machine with little memory starts a worker per core and the kernel kills them.
WORKER_MEMORY = 1 << 30

Result = TypeVar("Result")


def executor_name() -> str:
    """The executor REMI_EXECUTOR names (unset: auto); a UserError for any other name."""
    name = os.environ.get(EXECUTOR_ENV, "").strip() or "auto"
    if name not in EXECUTORS:
        raise UserError(f"{EXECUTOR_ENV}={name!r} is not an executor; use one of {', '.join(EXECUTORS)} "
                        f"(unset means auto).")
    return name


def executor_for(blocks: int, *shared: Any) -> str:
    """The executor that runs `blocks` blocks that share the objects `shared` (map_in_order's keyword
    arguments, or the ones among them that hold tensors): REMI_EXECUTOR's, with auto made concrete.
    Auto takes worker processes when the stage computes on the CPU, two or more workers fit the free
    CPUs and the shared tensors fit the free shared memory; else this process (one GPU is best used by
    one process, and one worker would only add its start-up)."""
    name = executor_name()
    if name != "auto":
        return name
    if compute_device().type != "cpu":
        return "local"
    workers, _, by_cpus = _worker_counts(blocks)
    if workers < 2:
        return "local"
    if shortage := shared_memory_shortage(*shared):
        print(f"note: {shortage}; the blocks train in this process. For worker processes, enlarge it "
              f"({ENLARGE_SHARED_MEMORY}).", file=sys.stderr)
        return "local"
    # Said only when memory, not the CPUs or REMI_WORKERS (a number set is as asked), chose fewer workers.
    if worker_count() is None and workers < min(blocks, by_cpus):
        print(f"note: {workers} worker processes, not {min(blocks, by_cpus)}: the free memory holds {workers} at "
              f"{WORKER_MEMORY >> 30} GiB each. {WORKERS_ENV} sets the number.", file=sys.stderr)
    return "processes"


def shared_memory_shortage(*shared: Any) -> str | None:
    """Why the tensors in `shared` cannot reach worker processes through shared memory (a sentence),
    or None when they fit, with SHARED_MEMORY_HEADROOM to spare. Without a /dev/shm (not Linux) the
    room is the system's to manage, and None."""
    if not SHARED_MEMORY.is_dir():
        return None
    needed = sum(storage.nbytes() for storage in _storages(shared).values() if not storage.is_shared())
    free = shutil.disk_usage(SHARED_MEMORY).free
    if needed + SHARED_MEMORY_HEADROOM <= free:
        return None
    return (f"the blocks share {needed / 2**20:.0f} MiB of tensors, and {SHARED_MEMORY} has "
            f"{free / 2**20:.0f} MiB free ({SHARED_MEMORY_HEADROOM >> 20} MiB more are kept for the results)")


def _storages(value: Any, found: dict[int, torch.UntypedStorage] | None = None) -> dict[int, torch.UntypedStorage]:
    """The CPU tensor storages in `value` (tensors, dataclasses, mappings, lists and tuples of them), by
    address, so that views of one storage count once."""
    found = {} if found is None else found
    if isinstance(value, torch.Tensor):
        if value.device.type == "cpu":
            found[value.untyped_storage().data_ptr()] = value.untyped_storage()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            _storages(getattr(value, field.name), found)
    elif isinstance(value, Mapping):
        for item in value.values():
            _storages(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _storages(item, found)
    return found


def map_in_order(function: Callable[..., Result], items: Sequence[Any], executor: str, **shared: Any
                 ) -> Generator[Result]:
    """`function(item, **shared)` for every item on `executor` (`executor_for`'s answer), yielded in the
    order of `items` as each is ready.

    `function` must be importable by name (a module-level function of this package) for the worker
    processes and Ray, and `shared` picklable: it is sent to each worker, or to the cluster, once,
    whatever the number of items; callbacks can only be passed to the local executor.
    Close the generator (`contextlib.closing`) when the caller may stop early or fail: that cancels
    the work still running, ends the worker processes and stops a private Ray instance.
    """
    if executor == "local":
        for item in items:
            yield function(item, **shared)
    elif executor == "processes":
        yield from _map_in_processes(function, items, shared)
    else:
        yield from _map_on_ray(function, items, shared)


def worker_count() -> int | None:
    """REMI_WORKERS as a number of worker processes, None when unset; a UserError when it is not 1 to 9999."""
    return count_from_env(WORKERS_ENV, "worker processes", "unset it for one per free CPU")


def workers_and_threads(blocks: int) -> tuple[int, int]:
    """How many worker processes, and torch threads in each, for `blocks` blocks: together no more threads
    than the CPUs free now (`configure_threads`' rule), since a thread that shares its core with another
    makes every parallel region wait for it, and no more workers than the free memory holds at WORKER_MEMORY
    each. REMI_THREADS, when set, is each worker's count, so the bytes match a local run with the same
    setting; REMI_WORKERS, when set, is the number of workers."""
    workers, threads, _ = _worker_counts(blocks)
    return workers, threads


def _worker_counts(blocks: int) -> tuple[int, int, int]:
    """`workers_and_threads`' answer, and how many workers the free CPUs alone would hold."""
    free = max(1, available_cpus() - cpus_busy_elsewhere())
    threads = threads_override()
    by_cpus = max(1, free // (threads or 1))
    workers = max(1, min(worker_count() or min(by_cpus, _workers_memory_holds()), blocks))
    return workers, threads or max(1, free // workers), by_cpus


def _workers_memory_holds() -> int:
    """How many workers the memory free now holds at WORKER_MEMORY each (at least one: the stage's own
    process would need as much); unbounded where the free memory cannot be read."""
    memory = available_memory()
    return sys.maxsize if memory is None else max(1, memory // WORKER_MEMORY)


def _map_in_processes(function: Callable[..., Result], items: Sequence[Any], shared: dict[str, Any]
                      ) -> Generator[Result]:
    workers, threads = workers_and_threads(len(items))  # a bad setting is reported before anything starts
    if not items:
        return
    if shortage := shared_memory_shortage(shared):
        # Else torch fails deep inside the pool's start with "unable to allocate shared memory".
        raise UserError(f"{EXECUTOR_ENV}=processes: {shortage}. Enlarge it ({ENLARGE_SHARED_MEMORY}), or set "
                        f"{EXECUTOR_ENV}=local (or unset it) to train in the stage's process.")
    # Spawned, not forked: the stage has used torch's thread pool already, and a forked OpenMP pool can
    # hang. `shared` is sent once per worker, not once per block, its tensors as shared memory.
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker,
                               initargs=(os.getpid(), {THREADS_ENV: str(threads)}, function, shared))
    futures: deque[Future[Result]] = deque(pool.submit(_run_in_worker, item) for item in items)
    try:
        while futures:
            try:
                result = futures[0].result()
            except BrokenProcessPool as error:
                raise UserError(f"A worker process died before its block was done (killed, or out of memory). Set "
                                f"{WORKERS_ENV} to fewer workers, or {EXECUTOR_ENV}=local to train in the stage's "
                                f"process.") from error
            yield result
            futures.popleft()  # released, so finished blocks do not stay in memory
    finally:
        for future in futures:
            future.cancel()
        # A failure, SIGTERM or an early close must not wait for blocks still training: end the workers.
        # (ProcessPoolExecutor has no public way to do so before Python 3.14's kill_workers.)
        for process in list(pool._processes.values()):
            process.kill()
        pool.shutdown(wait=True, cancel_futures=True)


_worker: dict[str, Any] = {}  # in a worker process: the function and the arguments every block shares


def _start_worker(stage: int, environment: dict[str, str], function: Callable[..., Any], shared: dict[str, Any]
                  ) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the stage's to handle; it ends the workers
    _die_with(stage)
    os.environ.update(environment)
    configure_threads()
    _worker.update(function=function, shared=shared)


def _die_with(stage: int) -> None:
    """Linux: SIGKILL this worker when the stage that started it dies, even by SIGKILL (an OOM kill, a
    scheduler's hard stop), so no worker trains on for a stage that is gone. A stage that died while this
    worker was starting sends no signal, and the worker would wait for blocks forever (it holds its own
    queue's write end): it exits here instead."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != stage:
        os._exit(1)


def _run_in_worker(item: Any) -> Any:
    return _worker["function"](item, **_worker["shared"])


def check_executor_settings() -> None:
    """The executor's settings, read as its stage will read them, so `remi run` can refuse them before DVC
    removes any stage's outputs: REMI_EXECUTOR, and with ray, Ray installed and its per-task resources."""
    if executor_name() != "ray":
        return
    _task_resources()
    if importlib.util.find_spec("ray") is None:
        raise UserError(RAY_MISSING)


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
        raise UserError(RAY_MISSING) from None
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
    except (ValueError, ConnectionError) as error:  # a malformed address, or no cluster answering there
        if not address:
            raise
        raise UserError(f"RAY_ADDRESS={address[:200]!r}: no Ray cluster could be reached there "
                        f"({type(error).__name__}: {str(error)[:200]}). Give the address `ray start --head` printed, "
                        "or unset RAY_ADDRESS for a private instance.") from error
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
