"""Advisory file locks with a bounded wait, for steps two processes must not interleave."""

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from remi.errors import UserError


class LockTimeout(UserError):
    """Another process held the lock for longer than we were willing to wait."""


@contextmanager
def file_lock(path: Path, timeout_seconds: float, what: str, shared: bool = False) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if needed), or with `shared` one that other shared
    holders may hold too; the kernel drops it if we die."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(f"{what}: another process has held {path} for over "
                                      f"{timeout_seconds:.0f} s; try again when it has finished.") from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing releases the lock
