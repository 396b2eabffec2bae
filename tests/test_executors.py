"""Executors (remi/runtime/executors.py): the settings they refuse, worker processes on this machine, and
the Ray executor (on loopback only) and worker processes training shadows and forgetting quality's
retrainings into the same files as the local executor."""

import hashlib
import json
import multiprocessing
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from remi.errors import UserError
from remi.runtime import device, executors
from remi.runtime.executors import _check_resources, _run_in_task, map_in_order, task_environment
from tests.conftest import REPO, clone_run


def _add(item: int, offset: int) -> int:
    return item + offset


def test_local_executor_keeps_the_order_of_items(monkeypatch):
    monkeypatch.delenv("REMI_EXECUTOR", raising=False)
    assert list(map_in_order(_add, [3, 1, 2], "local", offset=10)) == [13, 11, 12]


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("REMI_EXECUTOR", "dask", "is not an executor"),
    ("REMI_RAY_CPUS", "0", "must be a number > 0"),
    ("REMI_RAY_GPUS", "-0.5", "must be a number >= 0"),
    ("REMI_RAY_GPUS", "half", "must be a number >= 0"),
    ("REMI_WORKERS", "0", "is not a whole number of worker processes"),
    ("REMI_WORKERS", "two", "is not a whole number of worker processes"),
])
def test_bad_executor_settings_are_refused_before_any_work(monkeypatch, variable, value, message):
    monkeypatch.setenv("REMI_EXECUTOR", "processes" if variable == "REMI_WORKERS" else "ray")
    monkeypatch.setenv(variable, value)
    with pytest.raises(UserError, match=message):
        next(map_in_order(_add, [1], executors.executor_for(1), offset=0))


def _sleep_on_one(item: int) -> int:
    if item == 1:
        time.sleep(600)
    return item


def _pid_and_threads(item: int) -> tuple[int, int]:
    time.sleep(0.2)  # long enough that the second worker takes a block too
    return os.getpid(), torch.get_num_threads()


def _killed_on_one(item: int) -> int:
    if item == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return item


def _refuse_two(item: int) -> int:
    if item == 2:
        raise UserError("item 2 is refused")
    return item * item


def test_worker_processes_give_the_results_in_order_and_end_with_the_work(monkeypatch):
    monkeypatch.setenv("REMI_EXECUTOR", "processes")
    monkeypatch.setenv("REMI_WORKERS", "2")
    assert list(map_in_order(_add, [3, 1, 2], "processes", offset=10)) == [13, 11, 12]
    assert not multiprocessing.active_children()
    # The blocks ran in worker processes, not here, each with the threads REMI_THREADS gives a worker.
    ran_in = list(map_in_order(_pid_and_threads, [0, 1, 2, 3], "processes"))
    assert {pid for pid, _ in ran_in} - {os.getpid()} == {pid for pid, _ in ran_in} and len(ran_in) == 4
    assert all(threads == int(os.environ["REMI_THREADS"]) for _, threads in ran_in)

    # A failing block: the results before it, then its own exception; the workers are gone.
    results = []
    with pytest.raises(UserError, match="item 2 is refused"):
        for result in map_in_order(_refuse_two, [0, 1, 2, 3], "processes"):
            results.append(result)
    assert results == [0, 1] and not multiprocessing.active_children()

    # A worker killed under a block (the OOM killer): one message that says what to change.
    with pytest.raises(UserError, match="A worker process died before its block was done"):
        list(map_in_order(_killed_on_one, [0, 1], "processes"))
    assert not multiprocessing.active_children()

    # Closed early (a failure in the caller, SIGTERM unwinding the stage): a block still training is
    # not waited for.
    blocks = map_in_order(_sleep_on_one, [0, 1], "processes")
    assert next(blocks) == 0
    started = time.monotonic()
    blocks.close()
    assert time.monotonic() - started < 30 and not multiprocessing.active_children()


KILLED_STAGE = """
import multiprocessing
from remi.runtime.executors import map_in_order
from tests.test_executors import _pid_then_sleep

for pid in map_in_order(_pid_then_sleep, [0, 1], "processes"):
    print(" ".join(str(worker.pid) for worker in multiprocessing.active_children()), flush=True)
"""


def _pid_then_sleep(item: int) -> int:
    if item == 1:
        time.sleep(600)
    return os.getpid()


def test_a_stage_killed_outright_takes_its_workers_with_it(tmp_path):
    stage = subprocess.Popen([sys.executable, "-c", KILLED_STAGE], cwd=REPO, stdout=subprocess.PIPE, text=True,
                             env=os.environ | {"REMI_WORKERS": "2"})
    try:
        workers = [int(pid) for pid in stage.stdout.readline().split()]  # type: ignore[union-attr]
        assert workers and any(_alive(pid) for pid in workers)  # one is training block 1
    finally:
        stage.kill()
        stage.wait(timeout=30)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers), "a worker outlived its stage"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie has ended; its parent (init) reaps it


GIB = 1 << 30


@pytest.mark.parametrize(("cpus", "busy", "threads", "workers", "blocks", "memory", "expected"), [
    (4, 0, "", "", 8, 64 * GIB, (4, 1)),   # one single-threaded worker per free CPU
    (4, 0, "", "", 2, 64 * GIB, (2, 2)),   # no more workers than blocks; the CPUs shared among them
    (4, 3, "", "", 8, 64 * GIB, (1, 1)),   # three CPUs busy elsewhere
    (4, 0, "2", "", 8, 64 * GIB, (2, 2)),  # REMI_THREADS per worker, workers x threads within the free CPUs
    (4, 0, "", "3", 8, 64 * GIB, (3, 1)),  # REMI_WORKERS decides the workers
    (2, 0, "4", "", 8, 64 * GIB, (1, 4)),  # REMI_THREADS above the CPUs: one worker, as a local run
    (16, 0, "", "", 16, 5 * GIB // 2, (2, 8)),  # 16 cores, 2.5 GiB free: two workers, the cores shared
    (16, 0, "", "", 16, GIB // 4, (1, 16)),  # too little for one: one worker (the stage would need as much)
    (16, 0, "", "", 16, None, (16, 1)),    # memory unknown (not Linux): the CPUs decide
    (16, 0, "", "6", 16, GIB, (6, 2)),     # REMI_WORKERS overrides the memory's count too
])
def test_workers_and_their_threads_fit_the_free_cpus_and_memory(monkeypatch, cpus, busy, threads, workers, blocks,
                                                                memory, expected):
    monkeypatch.setattr(executors, "available_cpus", lambda: cpus)
    monkeypatch.setattr(executors, "cpus_busy_elsewhere", lambda: busy)
    monkeypatch.setattr(executors, "available_memory", lambda: memory)
    monkeypatch.setenv("REMI_THREADS", threads)
    monkeypatch.setenv("REMI_WORKERS", workers)
    assert executors.workers_and_threads(blocks) == expected


def test_the_free_memory_is_read_from_the_kernel_and_a_cgroup_limit_caps_it(monkeypatch, tmp_path):
    total = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                 if line.startswith("MemTotal:"))
    free = device.available_memory()
    assert free is not None and 0 < free <= total
    limit, current = tmp_path / "memory.max", tmp_path / "memory.current"
    limit.write_text(f"{GIB + (64 << 20)}\n")
    current.write_text(f"{GIB}\n")
    monkeypatch.setattr(device, "CGROUP_MEMORY_MAX", limit)
    monkeypatch.setattr(device, "CGROUP_MEMORY_CURRENT", current)
    assert device.available_memory() == 64 << 20  # a container's limit, all but 64 MiB of it in use
    limit.write_text("max\n")
    assert device.available_memory() == pytest.approx(free, rel=0.2)  # no limit: the kernel's figure
    monkeypatch.setattr(device, "MEMINFO", tmp_path / "absent")
    monkeypatch.setattr(device, "CGROUP_MEMORY_MAX", tmp_path / "absent")
    assert device.available_memory() is None


def test_auto_takes_worker_processes_only_on_a_cpu_with_room_for_two(monkeypatch):
    monkeypatch.delenv("REMI_EXECUTOR", raising=False)
    monkeypatch.setattr(executors, "cpus_busy_elsewhere", lambda: 0)
    monkeypatch.setattr(executors, "available_memory", lambda: 64 * GIB)
    monkeypatch.setenv("REMI_THREADS", "1")
    monkeypatch.setattr(executors, "available_cpus", lambda: 2)
    assert executors.executor_for(2) == "processes"
    assert executors.executor_for(1) == "local"  # one block: a worker would only add its start-up
    monkeypatch.setattr(executors, "available_cpus", lambda: 1)
    assert executors.executor_for(8) == "local"
    monkeypatch.setattr(executors, "available_cpus", lambda: 16)
    monkeypatch.setattr(executors, "compute_device", lambda: torch.device("cuda"))
    assert executors.executor_for(8) == "local"  # one GPU, one process
    monkeypatch.setenv("REMI_EXECUTOR", "processes")
    assert executors.executor_for(1) == "processes"  # a named executor is taken as named


def test_auto_says_when_the_free_memory_holds_fewer_workers_than_the_cpus(monkeypatch, capsys):
    monkeypatch.delenv("REMI_EXECUTOR", raising=False)
    monkeypatch.delenv("REMI_THREADS", raising=False)
    monkeypatch.delenv("REMI_WORKERS", raising=False)
    monkeypatch.setattr(executors, "cpus_busy_elsewhere", lambda: 0)
    monkeypatch.setattr(executors, "available_cpus", lambda: 16)
    monkeypatch.setattr(executors, "available_memory", lambda: 3 * GIB)
    assert executors.executor_for(8) == "processes"
    assert "note: 3 worker processes, not 8: the free memory holds 3 at 1 GiB each" in capsys.readouterr().err
    monkeypatch.setattr(executors, "available_memory", lambda: 64 * GIB)
    assert executors.executor_for(8) == "processes" and capsys.readouterr().err == ""  # the CPUs decide: no note
    monkeypatch.setenv("REMI_WORKERS", "2")
    assert executors.executor_for(8) == "processes" and capsys.readouterr().err == ""  # as asked: no note
    monkeypatch.delenv("REMI_WORKERS")
    monkeypatch.setattr(executors, "available_memory", lambda: GIB)
    assert executors.executor_for(8) == "local"  # room for one worker: the stage's own process


SMALL_SHARED_MEMORY = """
import torch
from remi.errors import UserError
from remi.runtime import device, executors
from remi.runtime.executors import executor_for, map_in_order
from tests.test_executors import _is_shared

executors.available_cpus = lambda: 2  # room for two workers, whatever else the machine runs
executors.cpus_busy_elsewhere = lambda: 0
executors.available_memory = lambda: None
small, large = torch.ones(1 << 18), torch.ones(6 << 20)  # 1 MiB and 24 MiB of float32
print(executor_for(2, {"data": small}), *map_in_order(_is_shared, [0, 1], "processes", data=small), flush=True)
print(executor_for(2, (large, small)), flush=True)
try:
    list(map_in_order(_is_shared, [0, 1], "processes", data=large))
except UserError as error:
    print("refused:", error)
"""


def _is_shared(item: int, data: torch.Tensor) -> bool:
    return data.is_shared()


def test_shared_tensors_reach_the_workers_through_shared_memory_and_auto_stays_local_when_it_is_small():
    """In a container whose /dev/shm is small (Docker's default: 64 MB) the dataset cannot reach worker
    processes. Auto then trains in the stage's process and says why; REMI_EXECUTOR=processes is refused
    with the fix, instead of torch's "unable to allocate shared memory" from inside the pool's start."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--mount", "true"]).returncode != 0:
        pytest.skip("needs unshare --mount (root) to give the script a small /dev/shm of its own")
    script = (f"mount -t tmpfs -o size=32m tmpfs /dev/shm && exec {shlex.quote(sys.executable)} -c "
              f"{shlex.quote(SMALL_SHARED_MEMORY)}")
    done = subprocess.run(["unshare", "--mount", "sh", "-c", script], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=os.environ | {"REMI_THREADS": "1", "REMI_EXECUTOR": ""})
    assert done.returncode == 0, done.stderr
    small, large, refused = done.stdout.splitlines()
    assert small == "processes True True"  # 1 MiB fits, and the workers map it rather than copy it
    assert large == "local"  # 24 MiB and the results' 16 MiB do not fit 32 MiB
    assert "note: the blocks share 24 MiB of tensors, and /dev/shm has" in done.stderr
    assert "--shm-size" in done.stderr
    assert refused.startswith("refused: REMI_EXECUTOR=processes: the blocks share 24 MiB") and "--shm-size" in refused


def test_a_request_beyond_the_whole_cluster_is_refused_instead_of_waiting_forever():
    _check_resources({"CPU": 2.0}, cpus=2, gpus=0)  # fits
    with pytest.raises(UserError, match=r"REMI_RAY_GPUS asks for 0\.5 GPUs per task, but the Ray cluster has 0"):
        _check_resources({"CPU": 2.0}, cpus=1, gpus=0.5)
    with pytest.raises(UserError, match="REMI_RAY_CPUS asks for 4 CPUs"):
        _check_resources({"CPU": 2.0, "GPU": 1.0}, cpus=4, gpus=0)


def test_a_task_gets_the_threads_and_device_it_was_given(monkeypatch):
    monkeypatch.delenv("REMI_THREADS")
    assert task_environment(cpus=2.5, gpus=0) == {"REMI_DEVICE": "cpu", "REMI_THREADS": "2"}
    assert task_environment(cpus=0.5, gpus=0.25) == {"REMI_DEVICE": "cuda", "REMI_THREADS": "1"}
    monkeypatch.setenv("REMI_THREADS", "3")  # fixed by the user: the tasks compute as a local run would
    assert task_environment(cpus=1, gpus=0)["REMI_THREADS"] == "3"

    threads = torch.get_num_threads()
    monkeypatch.setenv("REMI_DEVICE", "cuda")  # the driver's; monkeypatch restores both variables
    try:
        seen = _run_in_task(_threads_and_device, 7, {"REMI_DEVICE": "cpu", "REMI_THREADS": "1"}, offset=1)
    finally:
        torch.set_num_threads(threads)
    assert seen == (8, 1, "cpu")


def _threads_and_device(item: int, offset: int) -> tuple[int, int, str]:
    return item + offset, torch.get_num_threads(), os.environ["REMI_DEVICE"]


def _shadow_files(work: Path) -> dict[str, str]:
    shadows = work / "models" / "shadows"
    return {str(path.relative_to(shadows)): hashlib.md5(path.read_bytes()).hexdigest()
            for path in sorted(shadows.rglob("*")) if path.is_file() and path.name != ".gitignore"}


def _ray_daemons() -> set[int]:
    """PIDs of Ray's daemons by process name (a worker's command line also names the raylet)."""
    return {int(pid) for name in ("raylet", "gcs_server")
            for pid in subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()}


def _no_new_ray_daemons(before: set[int], seconds: float = 10) -> bool:
    """True once every Ray daemon started since `before` has gone (they exit a moment after shutdown)."""
    deadline = time.monotonic() + seconds
    while not _ray_daemons() <= before:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _in_loopback_namespace(command: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`command` (shell) in a new network namespace with only loopback, up: Ray binds every interface
    and advertises the host's address, so there nothing it opens can reach, or be reached from, outside."""
    return subprocess.run(["unshare", "--net", "--", "sh", "-c", f"ip link set lo up && {command}"], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)


def _quality_metrics(work: Path) -> dict[str, float]:
    metrics = json.loads((work / "metrics" / "forgetting_quality.json").read_text())
    return {key: value for key, value in metrics.items() if key != "stage_seconds"}


def _ran(result: subprocess.CompletedProcess) -> set[str]:
    return {line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage")}


@pytest.mark.slow
def test_shadows_and_retrainings_trained_as_ray_tasks_or_in_worker_processes_match_the_local_executor(
        tiny_run, tmp_path):
    work = tmp_path / "repo"
    run = clone_run(tiny_run, work)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["shadows"].update(count=4)  # tiny profile: blocks of 2, so two Ray tasks of two shadows
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # The shadows stage trains the block [2, 3] here; forgetting quality re-runs because its ReMI runs
    # take each forget sample's reference signal from the shadows, now four.
    for stage in ("train_shadows", "forgetting_quality"):
        local = run(sys.executable, "-m", "remi", "run", "--single-item", stage)
        assert local.returncode == 0, local.stderr[-3000:]
        assert _ran(local) == {stage}
    local_files = _shadow_files(work)
    assert len(local_files) >= 4 * 3  # model, outputs and fingerprint per shadow
    quality_csv = work / "reports" / "forgetting_quality.csv"
    local_quality = (quality_csv.read_bytes(), _quality_metrics(work))

    for shadow in (work / "models" / "shadows").glob("shadow_*"):
        shutil.rmtree(shadow)
    daemons_before = _ray_daemons()
    remi = shlex.join([sys.executable, "-m", "remi", "run"])
    # The shadows are missing, so their stage retrains all four; forgetting quality (whose inputs come
    # back byte-identical) is forced, so its retrainings, one block, go through Ray too.
    both = f"{remi} --single-item train_shadows && {remi} --force --single-item forgetting_quality"
    result = _in_loopback_namespace(both, cwd=work, env=run.env | {"REMI_EXECUTOR": "ray"})  # type: ignore[attr-defined]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert _no_new_ray_daemons(daemons_before), "the stage left its Ray instance running"

    assert _ran(result) == {"train_shadows", "forgetting_quality"}
    assert _shadow_files(work) == local_files
    assert (quality_csv.read_bytes(), _quality_metrics(work)) == local_quality
    metrics = json.loads((work / "metrics" / "train_shadows.json").read_text())
    assert (metrics["shadows_trained"], metrics["shadows_reused"]) == (4, 0)
    assert "trained (ray)" in result.stderr

    # Worker processes on this machine (REMI_THREADS is set, so each worker computes as the local run did).
    for shadow in (work / "models" / "shadows").glob("shadow_*"):
        shutil.rmtree(shadow)
    result = subprocess.run(["sh", "-c", both], cwd=work, env=run.env | {"REMI_EXECUTOR": "processes"},  # type: ignore[attr-defined]
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert _ran(result) == {"train_shadows", "forgetting_quality"}
    assert _shadow_files(work) == local_files
    assert (quality_csv.read_bytes(), _quality_metrics(work)) == local_quality
    assert "trained (processes)" in result.stderr


FAILING_TASK = """
from remi.errors import UserError
from remi.runtime.executors import _check_resources, _run_in_task, map_in_order, task_environment

def square_unless_two(item):
    if item == 2:
        raise UserError("item 2 is refused")
    return item * item

results = []
try:
    for result in map_in_order(square_unless_two, [0, 1, 2, 3], "ray"):
        results.append(result)
except UserError as error:
    print("results", results, "error", error, flush=True)
"""


@pytest.mark.slow
def test_a_failing_ray_task_stops_with_its_own_error_after_the_results_before_it():
    daemons_before = _ray_daemons()
    result = _in_loopback_namespace(shlex.join([sys.executable, "-c", FAILING_TASK]),
                                    env=os.environ | {"REMI_EXECUTOR": "ray"})
    assert result.returncode == 0, result.stderr[-3000:]
    # The items before the failing one arrive (the stage saves them), then the task's own exception.
    assert "results [0, 1] error item 2 is refused" in result.stdout
    assert _no_new_ray_daemons(daemons_before), "the Ray instance was left running after the failure"


ALLOCATING_PARENT_AND_WORKER = """
import multiprocessing, time

def work(_):
    block = bytearray(96 << 20)  # private memory, written (a bytearray is zeroed page by page)
    time.sleep(1.5)
    return len(block)

if __name__ == "__main__":
    held = bytearray(192 << 20)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.map(work, [0])
    raise SystemExit(3)
"""


def test_peak_memory_reports_the_stage_and_its_workers_apart(tmp_path):
    # scripts/peak_memory.py is how WORKER_MEMORY was sized (BENCHMARKS.md, "Memory per worker").
    script = tmp_path / "allocate.py"
    script.write_text(ALLOCATING_PARENT_AND_WORKER)
    out = tmp_path / "peaks.json"
    result = subprocess.run([sys.executable, str(REPO / "scripts/peak_memory.py"), "--every", "0.1", "--out", str(out),
                             "--", sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr  # the command's own exit status
    peaks = json.loads(out.read_text())["peaks_mib"]
    assert 192 <= peaks["allocate.py"]["RssAnon"] < 192 + 96, peaks  # the parent's, without its worker's
    assert 96 <= peaks["worker process"]["RssAnon"] < 192, peaks
    assert peaks["worker process"]["processes"] == 1 and "worker process" in result.stderr
