"""Peak memory of a command's processes, by kind: what sizes remi.runtime.executors.WORKER_MEMORY.

    python scripts/peak_memory.py [--every SECONDS] [--out FILE.json] -- COMMAND ...
    e.g. (in a project whose shadows must train: remove models/shadows first)
    python scripts/peak_memory.py --out reports/worker_memory/x.json -- dvc repro --single-item train_shadows

Runs COMMAND and samples /proc every SECONDS (default 0.25) for it and every process it starts. It prints,
per kind of process, the largest value each process of that kind reached of: VmHWM (peak resident set),
RssAnon (private memory: what one more such process adds), RssFile (mapped files, shared with other processes
through the page cache) and RssShmem (shared memory: torch's shared tensors, in memory once however many
processes map them). The kinds: a stage (`python -m stages.<name>`), a worker process (started by
multiprocessing's spawn), a Python script under its own name (dvc), anything else under its command's name.
Linux only. Exits with COMMAND's exit status.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

FIELDS = ("VmHWM", "RssAnon", "RssFile", "RssShmem")


def kind_of(command_line: str) -> str:
    words = command_line.split()
    if "multiprocessing.spawn" in command_line or "multiprocessing.forkserver" in command_line:
        return "worker process"
    if "-m" in words[:-1] and words[words.index("-m") + 1].startswith("stages."):
        return words[words.index("-m") + 1]
    if len(words) > 1 and Path(words[0]).name.startswith("python") and not words[1].startswith("-"):
        return Path(words[1]).name  # a Python script: dvc, remi, ...
    return Path(words[0]).name if words else "?"


def descendants(root: int) -> list[int]:
    """`root` and every live process under it (by parent pid, read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue += children.get(pid, [])
    return found


def sample(pid: int) -> tuple[str, dict[str, int]] | None:
    """A process's kind and its memory figures in MiB; None if it has ended."""
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except (OSError, ValueError):
        return None
    if not command_line or not all(field in status for field in FIELDS):
        return None  # a zombie, or a kernel thread
    return kind_of(command_line), {field: int(status[field].split()[0]) // 1024 for field in FIELDS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=float, default=0.25, help="seconds between samples (default 0.25)")
    parser.add_argument("--out", type=Path, help="also write the peaks to this JSON file")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    process = subprocess.Popen(command)
    peaks: dict[str, dict[str, int]] = {}
    seen: dict[str, set[int]] = {}
    while process.poll() is None:  # ends with the command
        for pid in descendants(process.pid):
            measured = sample(pid)
            if measured is None:
                continue
            kind, figures = measured
            seen.setdefault(kind, set()).add(pid)
            peaks[kind] = {field: max(peaks.get(kind, {}).get(field, 0), value) for field, value in figures.items()}
        time.sleep(args.every)
    report = {kind: figures | {"processes": len(seen[kind])} for kind, figures in peaks.items()}
    for kind, figures in report.items():
        print(f"{kind}: " + ", ".join(f"{field} {figures[field]} MiB" for field in FIELDS)
              + f" (largest of {figures['processes']} processes)", file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"command": command, "peaks_mib": report}, indent=1) + "\n")
    return process.returncode


if __name__ == "__main__":
    sys.exit(main())
