"""Progress lines: live on a terminal, one line per finished item in a log, nothing when switched off."""

import io

import pytest

from remi.runtime.progress import PROGRESS_ENV, Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(stream, log_each_item=True):
    progress = Progress("shadows", 3, log_each_item=log_each_item, stream=stream)
    for shadow in range(3):
        progress.detail(f"epoch {shadow}/2")
        progress.advance("trained")
    return stream.getvalue()


def test_a_log_gets_one_line_per_finished_item_with_an_eta(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    lines = _run(io.StringIO()).splitlines()
    assert [line.split(",")[0] for line in lines] == [f"[shadows] {i}/3 done (trained)" for i in (1, 2, 3)]
    assert "ETA" in lines[0] and "\r" not in "".join(lines) and "epoch" not in "".join(lines)


def test_epochs_in_a_log_print_only_the_last_line(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert _run(io.StringIO(), log_each_item=False).count("\n") == 1


def test_a_terminal_redraws_one_line_and_shows_the_detail(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    text = _run(Terminal())
    assert "\r\033[K[shadows] 1/3 epoch 0/2" in text and text.count("\n") == 1 and text.endswith("\n")


@pytest.mark.parametrize(("mode", "expected_lines"), [("off", 0), ("items", 3)])
def test_the_environment_overrides_the_choice(monkeypatch, mode, expected_lines):
    monkeypatch.setenv(PROGRESS_ENV, mode)
    assert _run(Terminal()).count("\n") == expected_lines


def test_an_unknown_progress_mode_is_refused_not_ignored(monkeypatch):
    from remi.errors import UserError

    monkeypatch.setenv("REMI_PROGRESS", "of")
    with pytest.raises(UserError, match="REMI_PROGRESS='of' is not one of live, items, off"):
        Progress("shadows", 8)
