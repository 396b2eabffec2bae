"""File I/O that survives crashes and hostile inputs.

Writes are atomic (a crash never leaves a half-written artifact that looks complete) and get the
modes a shared host expects (the umask's, not the owner-only modes of temp files). Reads of files a
user hands us are bounded: regular files only (a FIFO or /dev/zero would hang) and a size limit.
"""

import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from remi.errors import UserError
from remi.runtime.process_identity import start_ticks


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, for a moment, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _publish_mode(path: Path, is_dir: bool) -> None:
    """mkstemp/mkdtemp create owner-only entries; give them the modes a normal create would."""
    os.chmod(path, (0o777 if is_dir else 0o666) & ~_umask())


# Temp entries carry their writer's pid and start time, so a later run can tell a killed writer's leftovers
# (removed by sweep_stale_temps) from the temp files of a writer still at work, even once the kernel has
# given the pid to another process (small pids come back soon in a container or after a reboot). Names
# from before the start time was added have only the pid.
STALE_TEMP = re.compile(r"^\..+\.(?P<pid>\d+)(?:-(?P<ticks>\d+))?\.[A-Za-z0-9_]+\.tmp$")


def _temp_prefix(path: Path) -> str:
    pid = os.getpid()
    return f".{path.name}.{pid}-{start_ticks(pid)}."


def temp_writer(name: str) -> tuple[int, bool] | None:
    """For a temp entry's name, its writer's pid and whether that process still runs; else None."""
    match = STALE_TEMP.match(name)
    if not match:
        return None
    pid = int(match["pid"])
    started = start_ticks(pid)
    return pid, started is not None and match["ticks"] in (None, started)


def sweep_stale_temps(roots: tuple[Path, ...]) -> list[Path]:
    """Remove temp files and directories under `roots` whose writing process no longer exists."""
    removed = []
    for root in (r for r in roots if r.is_dir()):
        for parent, dirs, files in os.walk(root):
            for name in [*dirs, *files]:
                writer = temp_writer(name)
                if writer and not writer[1]:
                    stale = Path(parent) / name
                    if stale.is_dir():
                        shutil.rmtree(stale)
                    else:
                        stale.unlink(missing_ok=True)
                    removed.append(stale)
            dirs[:] = [d for d in dirs if not STALE_TEMP.match(d)]
    return removed


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp_path)` and move the result onto `path` only if it returned normally."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        _publish_mode(Path(tmp), is_dir=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def read_json_output(path: Path, writer: str) -> Any:
    """A JSON file that `writer` (a command, for the message) writes: a missing or damaged one is a UserError
    that says to run it."""
    try:
        return read_json(path)
    except FileNotFoundError as error:
        raise UserError(f"{path} not found: {writer} writes it.") from error
    except (ValueError, UnicodeDecodeError, IsADirectoryError) as error:  # JSONDecodeError is a ValueError
        raise UserError(f"{path} is not the JSON file {writer} writes ({str(error)[:200]}): run it again.") from error


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the system cannot."""
    libc_name = ctypes.util.find_library("c")
    renameat2 = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None) if libc_name else None
    if renameat2 is None:
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(ctypes.get_errno(), f"cannot swap {a} and {b}")


def replace_dir(path: Path, fill: Callable[[Path], None]) -> None:
    """Build a directory in a sibling temp dir via `fill(tmp_dir)`, then swap it into place.

    The swap is one atomic exchange where the system has one, so a reader (or a kill) sees either
    the whole old set of files or the whole new one, never a mix and never nothing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp"))
    try:
        fill(tmp)
        _publish_mode(tmp, is_dir=True)
        if path.exists() and _exchange(tmp, path):
            shutil.rmtree(tmp)  # now holds the old contents
            return
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_user_file(path: Path, max_bytes: int, what: str) -> bytes:
    """The bytes of a file a user supplied: a regular file (symlinks refused) of at most `max_bytes`.

    Opened without following links and without blocking, so a FIFO, a device or a link to one is
    refused instead of hanging the run.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UserError(f"{what} {path} is a symbolic link: replace it with the file itself.") from error
        raise UserError(f"{what} {path} cannot be opened: {error.strerror}.") from error
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UserError(f"{what} {path} is not a regular file (a FIFO, device or directory): give a file.")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > max_bytes:
            raise UserError(f"{what} {path} is {info.st_size:,} bytes; the limit is {max_bytes:,}.")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UserError(f"{what} {path} grew past {max_bytes:,} bytes while being read.")
    return data


def file_md5(path: Path) -> str:
    """MD5 of the file bytes: the same digest DVC records for a single-file output."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
