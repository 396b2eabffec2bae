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


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5", "²", "٣", "99999999999999999999", "01"])
def test_a_thread_count_that_is_not_a_positive_whole_number_is_refused(monkeypatch, value):
    monkeypatch.setenv(THREADS_ENV, value)
    with pytest.raises(UserError, match="REMI_THREADS"):
        configure_threads()


@pytest.mark.alone
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


@pytest.mark.alone
def test_a_running_stage_steps_down_when_a_neighbour_starts_and_back_up_when_it_ends(monkeypatch):
    """The re-check training loops make each epoch: a neighbour that starts after the stage chose its
    threads is seen (the stage's own running threads are not counted as a neighbour's)."""
    from remi.runtime import device

    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.setattr(device, "REBALANCE_EVERY_SECONDS", 0.0)
    cpus = available_cpus()
    assert configure_threads() == cpus  # the stage starts on an idle machine
    assert 1 <= device.own_running_threads() <= torch.get_num_threads() + 1
    busy = subprocess.Popen([sys.executable, "-c", "while True:\n    pass\n"], start_new_session=True)
    try:
        time.sleep(0.5)
        device.rebalance_threads()
        assert torch.get_num_threads() == max(1, cpus - 1)
    finally:
        os.killpg(busy.pid, signal.SIGKILL)
        busy.wait()
    time.sleep(0.2)
    device.rebalance_threads()
    assert torch.get_num_threads() == max(1, cpus - cpus_busy_elsewhere())


def test_remi_threads_fixes_the_count_against_rebalancing(monkeypatch):
    from remi.runtime import device

    monkeypatch.setenv(THREADS_ENV, "1")
    monkeypatch.setattr(device, "REBALANCE_EVERY_SECONDS", 0.0)
    assert configure_threads() == 1
    busy = subprocess.Popen([sys.executable, "-c", "while True:\n    pass\n"], start_new_session=True)
    try:
        time.sleep(0.5)
        monkeypatch.setenv(THREADS_ENV, str(available_cpus() + 1))
        device.rebalance_threads()
        assert torch.get_num_threads() == 1  # neither the load nor the new value: only a stage start reads it
    finally:
        os.killpg(busy.pid, signal.SIGKILL)
        busy.wait()
