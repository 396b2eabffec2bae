"""Progress of a long loop (shadow 3 of 8, epoch 12 of 30, ETA) on stderr, which DVC passes through.

On a terminal one line redraws in place. Elsewhere (CI logs, files) only finished items are printed,
one line each, so logs stay short. REMI_PROGRESS=live|items|off overrides the choice.
"""

import os
import sys
import time
from typing import TextIO

from remi.errors import UserError

PROGRESS_ENV = "REMI_PROGRESS"
MODES = ("live", "items", "off")


def mode_override() -> str | None:
    """REMI_PROGRESS, None when unset; a UserError for a value it does not know (a typo would otherwise
    silently give the default)."""
    chosen = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if chosen and chosen not in MODES:
        raise UserError(f"{PROGRESS_ENV}={chosen[:40]!r} is not one of {', '.join(MODES)}; unset it for the default "
                        "(live on a terminal, items elsewhere).")
    return chosen or None


def _mode(stream: TextIO) -> str:
    return mode_override() or ("live" if stream.isatty() else "items")


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class Progress:
    """`total` items of work under `label`; call detail() within an item and advance() after it.

    With `log_each_item` False (epochs, steps), a log gets only the last item's line.
    """

    def __init__(self, label: str, total: int, log_each_item: bool = True, stream: TextIO | None = None) -> None:
        self.label, self.total, self.done, self.log_each_item = label, total, 0, log_each_item
        self.stream = stream or sys.stderr
        self.mode = _mode(self.stream)
        self.started = time.perf_counter()

    def _eta(self) -> str:
        if not self.done:
            return ""
        left = (time.perf_counter() - self.started) / self.done * (self.total - self.done)
        return f", ETA {_duration(left)}"

    def detail(self, text: str) -> None:
        """Where the current item is (e.g. its epoch); shown live only."""
        if self.mode == "live":
            self.stream.write(f"\r\033[K[{self.label}] {self.done + 1}/{self.total} {text}{self._eta()}")
            self.stream.flush()

    def advance(self, note: str = "") -> None:
        """One item finished."""
        self.done += 1
        if self.mode == "off":
            return
        elapsed = _duration(time.perf_counter() - self.started)
        line = f"[{self.label}] {self.done}/{self.total} done{f' ({note})' if note else ''}, {elapsed}{self._eta()}"
        if self.mode == "live":
            self.stream.write(f"\r\033[K{line}" + ("\n" if self.done == self.total else ""))
        elif self.log_each_item or self.done == self.total:
            self.stream.write(line + "\n")
        self.stream.flush()
