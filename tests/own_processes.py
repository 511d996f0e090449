"""Stop only what a test started: processes found by their own temp dir or as descendants of their own PID.

Never ``ray stop --force`` or ``pkill``: those kill every Ray (or every server) on the machine, including a
user's job or another test run beside this one.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pids_mentioning(marker: str) -> list[int]:
    """PIDs whose command line contains ``marker`` (e.g. a Ray cluster's own ``--temp-dir``)."""
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me and marker in _cmdline(int(p))]


def descends_from(pid: int, root: int) -> bool:
    """Whether ``pid`` is ``root`` or one of its descendants (a local Ray's workers are the driver's)."""
    while pid > 1:
        if pid == root:
            return True
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
    return False


def stop_pids(pids: list[int], grace_s: float = 10.0) -> list[int]:
    """SIGTERM, then SIGKILL what is still alive after ``grace_s``; returns the PIDs that had to be killed."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and "zombie" not in _state(p)]
        time.sleep(0.2)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return alive


def _state(pid: int) -> str:
    try:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("State:"))
        return line.lower()
    except (OSError, StopIteration):
        return "gone"
