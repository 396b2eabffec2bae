"""Atomic, byte-stable, bounded file I/O and the artifacts built on it."""

import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from remi.errors import UserError
from remi.networks.checkpoints import (
    ArtifactError,
    TrainingDiverged,
    load_model,
    require_finite,
    save_model,
    torch_bytes,
)
from remi.pipeline.layout import run_record_path
from remi.pipeline.release import release_method
from remi.pipeline.tracking import code_identity, upstream_tags
from remi.runtime.files import atomic_write, read_user_file, replace_dir, sweep_stale_temps, write_json
from remi.runtime.locks import LockTimeout, file_lock
from tests.conftest import REPO


def test_equal_tensors_give_equal_bytes_whatever_the_file_name(tmp_path):
    payload = {"w": torch.arange(12.0).reshape(3, 4)}
    assert torch_bytes(payload) == torch_bytes({"w": torch.arange(12.0).reshape(3, 4)})
    atomic_write(tmp_path / "a.pt", lambda tmp: tmp.write_bytes(torch_bytes(payload)))
    atomic_write(tmp_path / "b.pt", lambda tmp: tmp.write_bytes(torch_bytes(payload)))
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_written_files_and_directories_get_the_umask_modes(tmp_path):
    previous = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
        replace_dir(tmp_path / "d", lambda d: (d / "f").write_text("x"))
    finally:
        os.umask(previous)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_replace_dir_swaps_the_whole_set_and_keeps_the_old_one_on_failure(tmp_path):
    target = tmp_path / "reports"
    replace_dir(target, lambda d: [(d / n).write_text("old") for n in ("a", "b")])

    def half_then_crash(directory):
        (directory / "a").write_text("new")
        raise RuntimeError("killed half way")

    with pytest.raises(RuntimeError):
        replace_dir(target, half_then_crash)
    assert {p.name: p.read_text() for p in target.iterdir()} == {"a": "old", "b": "old"}
    replace_dir(target, lambda d: (d / "c").write_text("new"))
    assert [p.name for p in target.iterdir()] == ["c"]
    assert [p.name for p in tmp_path.iterdir()] == ["reports"]  # no temp or old directory left


def test_a_killed_writers_temp_files_are_swept_and_a_live_ones_are_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / f".model.pt.{dead}.abcd1234.tmp").write_text("half")
    (tmp_path / f".target.{dead}.abcd1234.tmp").mkdir()
    live = tmp_path / f".model.pt.{os.getpid()}.abcd1234.tmp"
    live.write_text("being written")
    assert len(sweep_stale_temps((tmp_path,))) == 2
    assert [p.name for p in tmp_path.iterdir()] == [live.name]


def test_user_files_are_bounded_and_must_be_regular(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(UserError, match="the limit is 100"):
        read_user_file(tmp_path / "big", 100, "Request")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UserError, match="not a regular file"):
        read_user_file(tmp_path / "fifo", 100, "Request")
    (tmp_path / "link").symlink_to("/dev/zero")
    with pytest.raises(UserError, match="symbolic link"):
        read_user_file(tmp_path / "link", 100, "Request")


def test_a_diverged_model_is_never_written(tmp_path, fashion_mnist):
    model = torch.nn.Linear(784, 10)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        save_model(tmp_path, model, {"arch": "mlp"}, fashion_mnist)
    assert not (tmp_path / "model.pt").exists()
    require_finite({"step": torch.tensor(3)}, "integers are never NaN")


def test_a_corrupt_model_file_says_how_to_restore_it(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ArtifactError, match="dvc checkout"):
        load_model(tmp_path)
    with pytest.raises(ArtifactError, match="is missing"):
        load_model(tmp_path / "nowhere")


def test_a_dvc_lock_cut_short_by_a_kill_is_replaced_by_the_last_complete_one(tmp_path, monkeypatch, capsys):
    """The project's own dvc.lock, cut at 200 places as a kill during DVC's in-place rewrite would: each cut
    is restored from the last complete copy, except one between two stages, which is a complete lock of
    fewer stages (DVC re-runs the ones it lacks)."""
    from remi.pipeline import dvc_locks

    complete = (REPO / "dvc.lock").read_text()
    full_stages = yaml.safe_load(complete)["stages"]
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    monkeypatch.chdir(tmp_path)
    lock = tmp_path / "dvc.lock"
    lock.write_text(complete)

    def checked() -> int:  # what scripts/cycle_pr.sh asks before it commits the lock
        return subprocess.run([sys.executable, "-m", "remi.pipeline.dvc_locks"], capture_output=True).returncode

    assert checked() == 0
    dvc_locks.keep_or_restore_lock()  # complete: kept aside
    lock.write_text(complete[:len(complete) // 2])
    assert checked() == 1
    restored = 0
    for cut in sorted({len(complete) * k // 200 for k in range(1, 200)}):
        lock.write_text(complete[:cut])  # DVC killed while rewriting it in place
        dvc_locks.keep_or_restore_lock()
        if lock.read_text() == complete:
            assert "was cut short" in capsys.readouterr().err
            restored += 1
            continue
        stages = (yaml.safe_load(complete[:cut]) or {}).get("stages") or {}
        assert all(stage == full_stages[name] for name, stage in stages.items()), f"cut at {cut} kept"
        lock.write_text(complete)
        dvc_locks.keep_or_restore_lock()  # the complete lock kept aside again
    assert restored > 190


def test_dvcs_lock_table_cut_short_by_a_kill_is_cleared_and_dvc_runs_again(tmp_path, monkeypatch, capsys):
    """A SIGKILL between DVC's truncate and write of .dvc/tmp/rwlock left it empty in a CI run, and
    every later DVC command refused to start."""
    from remi.pipeline import dvc_locks

    monkeypatch.chdir(tmp_path)
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(command, check=True, capture_output=True)
    (tmp_path / "dvc.yaml").write_text("stages:\n  touch:\n    cmd: echo done > out.txt\n    outs: [out.txt]\n")
    dvc_locks.RWLOCK.write_text("")  # DVC killed while rewriting it in place

    def repro():
        return subprocess.run([sys.executable, "-m", "dvc", "repro"], capture_output=True, text=True)

    refused = repro()
    assert refused.returncode != 0 and "corrupted" in refused.stderr
    dvc_locks.clear_cut_short_rwlock()
    assert "was cut short" in capsys.readouterr().err and not dvc_locks.RWLOCK.exists()
    assert repro().returncode == 0 and (tmp_path / "out.txt").read_text() == "done\n"
    table = dvc_locks.RWLOCK.read_text()  # DVC wrote a complete one: kept as it is
    dvc_locks.clear_cut_short_rwlock()
    assert dvc_locks.RWLOCK.read_text() == table and capsys.readouterr().err == ""


@pytest.mark.parametrize("text", ['{"run_id": "abc', '[]', '{"experiment_id": "1"}', '{"run_id": 7}', "\udcff"])
def test_a_damaged_lineage_record_says_how_to_restore_it(tmp_path, monkeypatch, text):
    monkeypatch.chdir(tmp_path)
    path = run_record_path("unlearn/remi")
    path.parent.mkdir(parents=True)
    path.write_bytes(text.encode(errors="surrogateescape"))
    damaged = r"lineage/unlearn/remi\.json is not (a lineage record|the JSON file)"
    with pytest.raises(UserError, match=damaged + ".*`remi run`"):
        upstream_tags(["unlearn/remi"])
    with pytest.raises(UserError, match=damaged):
        release_method("remi", "unused")


def test_a_run_records_its_code_as_unknown_where_no_git_program_is_installed(tmp_path, monkeypatch):
    """A slim image can run DVC without the git program; the run records what it cannot know instead of dying."""
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    identity = code_identity(tmp_path)
    assert identity["git_commit"] == "unknown" and identity["git_dirty"] == "unknown"
    assert identity["dvc_lock_md5"] != "none"


def test_a_lineage_record_gives_its_run_id_and_a_missing_one_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_json(run_record_path("target"), {"run_id": "r1", "experiment_id": "0", "tracking_uri": "sqlite:///x"})
    assert upstream_tags(["target", "shadows"]) == {"upstream.target": "r1"}
    with pytest.raises(UserError, match=r"does not name the model.*`remi run`"):
        release_method("target", "unused")


def test_a_run_stopped_while_dvc_rewrote_the_lock_leaves_the_last_complete_one(tmp_path, monkeypatch):
    """SIGTERM (a CI job's timeout) stops DVC wherever it is; `remi run` must not exit on a cut lock, which the
    cycle's pull request would commit."""
    from remi.pipeline import runner
    from remi.pipeline.entry_point import Terminated

    complete = (REPO / "dvc.lock").read_text()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.lock").write_text(complete)

    def stopped_mid_write(command, run_name):
        (tmp_path / "dvc.lock").write_text(complete[:len(complete) // 3])
        raise Terminated(143)

    monkeypatch.setattr(runner, "run_under_parent_run", stopped_mid_write)
    with pytest.raises(Terminated):
        runner.run_pipeline([])
    assert (tmp_path / "dvc.lock").read_text() == complete


def test_shared_locks_hold_together_and_keep_an_exclusive_one_out(tmp_path):
    """flock ties a lock to an open file, so two holders in this process conflict as two processes would."""
    lock = tmp_path / "machine.lock"
    with (file_lock(lock, 0, "one shared holder", shared=True), file_lock(lock, 0, "another", shared=True),
          pytest.raises(LockTimeout, match="an exclusive holder"), file_lock(lock, 0.3, "an exclusive holder")):
        pass
    with (file_lock(lock, 0, "an exclusive holder"), pytest.raises(LockTimeout, match="a shared holder"),
          file_lock(lock, 0.3, "a shared holder", shared=True)):
        pass
