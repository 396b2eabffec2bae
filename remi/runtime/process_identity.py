"""Who runs a process, so another process can tell later whether it is still alive.

A process id alone is reused by the kernel; with the host name and the process's start time
(in clock ticks since boot, from /proc) it names one process for good. Its id means something only in
its own boot and process namespace, which the host name does not tell apart, so both are recorded too:
containers that share the host's name (`--network host`, two runners on one machine) share its kernel,
hence its boot, but not its process ids, and must not read each other's live processes as gone; a process
of an earlier boot is gone, whatever its id names now.
"""

import os
import socket
from pathlib import Path

HOST_TAG, PID_TAG, STARTED_TAG = "process.host", "process.pid", "process.start_ticks"
NAMESPACE_TAG = "process.namespace"  # the boot and the process namespace its id belongs to


def start_ticks(pid: int) -> str | None:
    """When the process started, in clock ticks since boot; None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces, so count from its closing parenthesis.
    return stat[stat.rindex(")") + 2 :].split()[19]


def process_namespace() -> str:
    """This boot's id and this process namespace's inode, "unknown" where /proc cannot say."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return "unknown"


def process_tags(pid: int | None = None) -> dict[str, str]:
    pid = pid or os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), STARTED_TAG: start_ticks(pid) or "unknown",
            NAMESPACE_TAG: process_namespace()}


def _namespace_match(tags: dict[str, str]) -> bool | None:
    """Whether the tagged process's id can be looked up here: None if it cannot be judged at all (another host, no
    pid), False if it belongs to another boot or process namespace (where both sides know them), else True (tags
    written before the namespace was recorded go by the host alone)."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return None
    theirs, ours = tags.get(NAMESPACE_TAG, "unknown"), process_namespace()
    return "unknown" in (theirs, ours) or theirs == ours


def is_gone(tags: dict[str, str]) -> bool:
    """True if the process these tags name (on this host) has exited; False if alive or unknowable: on another
    host, or in another process namespace of this boot."""
    match = _namespace_match(tags)
    if match is None:
        return False
    if not match:  # an earlier boot's process is gone; another namespace's of this boot is not ours to judge
        return tags[NAMESPACE_TAG].split(":")[0] != process_namespace().split(":")[0]
    return start_ticks(int(tags[PID_TAG])) != tags.get(STARTED_TAG)


def is_alive_here(tags: dict[str, str]) -> bool:
    """True only if the process these tags name runs now and is this process's to signal: same host, same boot
    and process namespace, same start time. A process `is_gone` cannot judge is not alive here: its id may name
    another process in this namespace."""
    return bool(_namespace_match(tags)) and start_ticks(int(tags[PID_TAG])) == tags.get(STARTED_TAG)
