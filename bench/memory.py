"""Peak resident memory and CPU time of vidseek and all of its Ray processes together, sampled from /proc.

Two sums per sample: RSS (each process's resident pages; pages shared between processes — libtorch, the
Ray object store's shared memory — are counted once *per process*, so the sum overstates what the job
holds) and PSS (each shared page split between the processes that map it: the sum is the physical memory
the family holds together). Both peaks are reported; PSS is the one to hold against a memory budget.

CPU: each process's user+system seconds (last value seen before it exited, so a process that lives less
than one sampling interval is missed), summed by role (driver, decode tasks' workers, encode/write actors, Ray's own
daemons): on a machine with few cores this is where the cores went.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import defaultdict
from pathlib import Path

MARKERS = ("ray::", "raylet", "gcs_server", "ray/_private", "ray/dashboard", "vidseek.apps.cli.main", "vidseek")


TICKS = os.sysconf("SC_CLK_TCK")


def role(cmd: str, is_me: bool) -> str:
    """A process's part in the job, from its command line (Ray sets actor titles like ``ray::MapWorker(…)``)."""
    if is_me:
        return "driver"
    if "vidseek.operators.isolated_decode" in cmd:  # a decode worker's child (operators/isolated_decode.py)
        return "decode child process"
    m = re.search(r"MapBatches\((\w+)\)", cmd)
    if m:
        return f"stage {m.group(1)}"
    for key in ("raylet", "gcs_server", "dashboard", "log_monitor", "monitor.py", "runtime_env"):
        if key in cmd:
            return f"ray {key.replace('.py', '')}"
    m = re.search(r"ray::(\w+)", cmd)  # Ray's own actors (Ray Data's stats/autoscaling), idle workers
    if m:
        return f"ray {m.group(1)}"
    return "ray other" if "ray" in cmd else "other"


def _cpu_seconds(proc: Path) -> float:
    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15 of stat)


def _family_sample(cpu: dict | None = None) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) in bytes over this process and every vidseek / Ray process.

    ``cpu``: filled with {pid: (role, CPU seconds so far)}."""
    me = os.getpid()
    rss = pss = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if int(proc.name) != me and not any(m in cmd for m in MARKERS):
                continue
            if cpu is not None:
                pid, name = int(proc.name), role(cmd, int(proc.name) == me)
                if pid in cpu and cpu[pid][0].startswith("stage "):
                    name = cpu[pid][0]  # a task worker between tasks shows ray::IDLE: keep its stage
                cpu[pid] = (name, _cpu_seconds(proc))
            for line in (proc / "smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return rss, pss


class PeakRSS(threading.Thread):
    """``with PeakRSS() as m: ...`` then ``m.peak_gb`` / ``m.peak_pss_gb``: the largest sums seen (every 0.5 s)."""

    def __init__(self, interval: float = 0.5):
        super().__init__(daemon=True)
        self.interval, self.peak, self.peak_pss = interval, 0, 0
        self.cpu: dict[int, tuple[str, float]] = {}
        self._base: dict[int, tuple[str, float]] = {}
        self.own_cpu_s = 0.0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self._sample()
            self.own_cpu_s = time.thread_time()  # this sampler's cost, in the driver's CPU figure
            self._halt.wait(self.interval)

    def _sample(self) -> None:
        rss, pss = _family_sample(self.cpu)
        self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)

    def __enter__(self) -> "PeakRSS":
        _family_sample(self._base)  # CPU already spent by processes alive now is not this span's
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self.join()
        self._sample()

    @property
    def peak_gb(self) -> float:
        return round(self.peak / 2**30, 2)

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds per role spent during the monitored span."""
        out: dict[str, float] = defaultdict(float)
        for pid, (name, secs) in self.cpu.items():
            out[name] += secs - self._base.get(pid, (name, 0.0))[1]
        if "driver" in out:  # the sampler runs in the driver: report it apart
            out["driver"] -= self.own_cpu_s
            out["memory/CPU sampler (bench)"] = self.own_cpu_s
        return {k: round(v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}

    @property
    def peak_pss_gb(self) -> float:
        return round(self.peak_pss / 2**30, 2)
