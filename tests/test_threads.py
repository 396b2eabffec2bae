"""The thread policy (remi/runtime/device.py configure_threads): REMI_THREADS decides when set;
otherwise the CPUs no other process keeps busy. Its speed under contention: `remi benchmark threads`
(test_cli.py runs it, BENCHMARKS.md has the figures)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from remi.errors import UserError
from remi.runtime.device import THREADS_ENV, available_cpus, configure_threads, cpus_busy_elsewhere


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_remi_threads_decides_when_set(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "1")
    assert configure_threads() == 1 == torch.get_num_threads()


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_thread_count_that_is_not_a_positive_whole_number_is_refused(monkeypatch, value):
    monkeypatch.setenv(THREADS_ENV, value)
    with pytest.raises(UserError, match="REMI_THREADS"):
        configure_threads()


def test_a_busy_process_keeps_its_cpu(monkeypatch):
    """A CPU-bound neighbour is counted, so the policy leaves it its core (on an otherwise idle
    machine: one fewer thread than CPUs, never fewer than one)."""
    monkeypatch.delenv(THREADS_ENV, raising=False)
    busy = subprocess.Popen([sys.executable, "-c", "while True:\n    pass\n"], start_new_session=True)
    try:
        time.sleep(0.5)  # running, not starting
        assert cpus_busy_elsewhere() >= 1
        assert configure_threads() <= max(1, available_cpus() - 1)
    finally:
        os.killpg(busy.pid, signal.SIGKILL)
        busy.wait()
    assert 1 <= available_cpus() <= len(os.sched_getaffinity(0))


def test_a_stage_with_a_bad_thread_count_stops_with_a_readable_error(monkeypatch, capsys):
    from remi.pipeline.entry_point import stage_main

    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(SystemExit) as stopped:
        stage_main(lambda: None)
    assert stopped.value.code == 2 and "ERROR (UserError): REMI_THREADS='many'" in capsys.readouterr().err
