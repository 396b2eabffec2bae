"""Who runs a process, so another process can tell later whether it is still alive.

A process id alone is reused by the kernel; with the host name and the process's start time
(in clock ticks since boot, from /proc) it names one process for good.
"""

import os
import socket
from pathlib import Path

HOST_TAG, PID_TAG, STARTED_TAG = "process.host", "process.pid", "process.start_ticks"


def start_ticks(pid: int) -> str | None:
    """When the process started, in clock ticks since boot; None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces, so count from its closing parenthesis.
    return stat[stat.rindex(")") + 2 :].split()[19]


def process_tags(pid: int | None = None) -> dict[str, str]:
    pid = pid or os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), STARTED_TAG: start_ticks(pid) or "unknown"}


def is_local(tags: dict[str, str]) -> bool:
    return tags.get(HOST_TAG) == socket.gethostname()


def is_gone(tags: dict[str, str]) -> bool:
    """True if the process these tags name (on this host) has exited; False if alive or unknowable."""
    if not is_local(tags) or not tags.get(PID_TAG, "").isdigit():
        return False
    return start_ticks(int(tags[PID_TAG])) != tags.get(STARTED_TAG)
