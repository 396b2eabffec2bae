import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest

from remi.runtime.locks import file_lock

REPO = Path(__file__).resolve().parent.parent
REMI = str(Path(sys.executable).with_name("remi"))  # the console script `pip install` made beside python
RAW_DIR = REPO / "data" / "raw" / "fashion_mnist"

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# pytest-xdist's workers (`make test` runs one per core) split the cores between them.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


def pytest_configure(config) -> None:
    """A fixed thread count, inherited by every pipeline the tests run: the default policy chooses by the
    machine's load (remi/runtime/device.py), and the tests compare bytes across runs (tests/test_threads.py
    unsets it to test the policy). Not in xdist's controller, which runs no test: its workers would
    inherit its count, one worker's share of the cores, and oversubscribe them."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return
    os.environ.setdefault("REMI_THREADS", str(max(1, len(os.sched_getaffinity(0)) // WORKERS)))


def _shared_dir(tmp_path_factory) -> Path:
    """A folder every xdist worker of this session sees (each has its own basetemp under it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


def pytest_collection_modifyitems(items) -> None:
    """Modules with slow tests first: xdist hands whole modules (`--dist loadfile`) to its workers in this
    order, and a long one handed out last would run on its own at the end."""
    slow = {item.module for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module not in slow)


# An `alone` test waits for the other workers' current tests (the longest take about ten minutes).
MACHINE_LOCK_SECONDS = 3600


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Under xdist, a test marked `alone` runs while the other workers wait between their tests: each test
    holds a shared lock from its fixtures' set-up to their tear-down, an `alone` one an exclusive lock.
    The turnstile, taken first by everyone, keeps the shared holders from starving an exclusive waiter."""
    if WORKERS == 1:
        return (yield)
    shared = _shared_dir(item.config._tmp_path_factory)  # the object behind the tmp_path_factory fixture
    alone = item.get_closest_marker("alone") is not None
    with ExitStack() as held:
        with file_lock(shared / "turnstile.lock", MACHINE_LOCK_SECONDS, "the test turnstile"):
            held.enter_context(file_lock(shared / "machine.lock", MACHINE_LOCK_SECONDS, "the machine",
                                         shared=not alone))
        return (yield)


@pytest.fixture(scope="session")
def fashion_mnist():
    from remi.data.datasets import load_dataset

    return load_dataset("fashion_mnist", RAW_DIR)


@pytest.fixture
def params():
    """params.yaml as the plain mapping it is before validation (tests edit it)."""
    from remi.pipeline.params import read_params_file

    return read_params_file(REPO / "params.yaml")


def runner(work: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Runs commands in `work` with its own MLflow store and this interpreter first on PATH."""
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
                        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)

    run.env = env  # type: ignore[attr-defined]
    return run


def pipeline_copy(work: Path, profile: str) -> Callable[..., subprocess.CompletedProcess]:
    """A git+DVC copy of the repository in `work` (tracked files and raw data) with `profile` applied
    and its own MLflow store; returns a runner of commands in it."""
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                             cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        if (REPO / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, work / name)
    for raw in (REPO / "data" / "raw").iterdir():
        if raw.is_dir():
            shutil.copytree(raw, work / "data" / "raw" / raw.name)
    run = runner(work)
    assert run(sys.executable, "-m", "remi", "profile", profile).returncode == 0
    for cmd in (("git", "init", "-q"), ("git", "add", "-A"),
                ("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy")):
        assert run(*cmd).returncode == 0
    return run


FIRST_RUN_LOG = "first_run.stdout"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The whole tiny-profile pipeline, run once per session (the first xdist worker to need it runs it,
    the others wait for it); tests work on clones of it and never change it."""
    shared = _shared_dir(tmp_path_factory)
    work, failed = shared / "tiny_run" / "repo", shared / "tiny_run.failed"
    with file_lock(shared / "tiny_run.lock", timeout_seconds=3600, what="the session's tiny run"):
        assert not failed.exists(), failed.read_text()
        if not (work.parent / FIRST_RUN_LOG).exists():
            shutil.rmtree(work, ignore_errors=True)  # what a worker that died making it left
            work.mkdir(parents=True)
            run = pipeline_copy(work, "profiles/tiny.yaml")
            result = run(REMI, "run")  # the console script, as users call it
            tail = result.stdout[-3000:] + result.stderr[-3000:]
            if result.returncode != 0:
                failed.write_text(tail)  # the other workers fail with it instead of running it again
            assert result.returncode == 0, tail
            (work.parent / FIRST_RUN_LOG).write_text(result.stdout)  # beside the copy: what ran, for the e2e tests
    return work


def clone_run(template: Path, work: Path) -> Callable[..., subprocess.CompletedProcess]:
    """A full copy of a finished pipeline copy (git, DVC cache, MLflow store); a runner in it."""
    shutil.copytree(template, work, symlinks=True)
    return runner(work)


# Outputs that record seconds or MLflow run ids: they differ between two runs of the same inputs.
VOLATILE = ("metrics/train_target.json", "metrics/train_shadows.json", "metrics/train_online_shadows.json",
            "metrics/forgetting_quality.json", "metrics/ulira.json", "reports/ulira.md",
            "metrics/audit.json", "metrics/unlearn/", "reports/audit/audit.md", "reports/audit/audit.html",
            "lineage/", "dvc.lock")
OUTPUTS = ("data/splits", "models", "metrics", "reports", "lineage", "dvc.lock")


def small_cnns(dataset, params: dict, seeds: list[int]) -> list:
    """params.yaml's small CNN for `dataset`, one per seed, each with its initial weights from its seed."""
    from remi.networks.architectures import build_network
    from remi.networks.training import seeded_network
    from remi.params_schema import Model

    options = Model.model_validate(params["model"] | {"arch": "small_cnn"})
    return [seeded_network(lambda: build_network(options, dataset.input_shape, dataset.num_classes), seed)
            for seed in seeds]


def output_hashes(work: Path, stable_only: bool = False) -> dict[str, str]:
    """md5 of every file the pipeline writes (hidden temp files included, so leftovers show)."""
    import hashlib

    hashes = {}
    for root in OUTPUTS:
        paths = [work / root] if (work / root).is_file() else sorted((work / root).rglob("*"))
        for path in paths:
            name = str(path.relative_to(work))
            if path.is_file() and path.name != ".gitignore" and not (stable_only and name.startswith(VOLATILE)):
                hashes[name] = hashlib.md5(path.read_bytes()).hexdigest()
    return hashes


def stable_lock(work: Path) -> dict:
    """dvc.lock without the hashes of volatile outputs (and of the directories holding them)."""
    import yaml

    lock = yaml.safe_load((work / "dvc.lock").read_text())
    volatile_dirs = ("reports/audit", "metrics/unlearn")
    for stage in lock["stages"].values():
        for kind in ("deps", "outs"):
            for entry in stage.get(kind, []):
                if entry["path"].startswith(VOLATILE) or entry["path"] in volatile_dirs:
                    entry.pop("md5", None)
                    entry.pop("size", None)
                    entry.pop("nfiles", None)
    return lock
