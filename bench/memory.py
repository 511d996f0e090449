"""Peak resident memory of vidseek and all of its Ray processes together, sampled from /proc.

Two sums per sample: RSS (each process's resident pages; pages shared between processes — libtorch, the
Ray object store's shared memory — are counted once *per process*, so the sum overstates what the job
holds) and PSS (each shared page split between the processes that map it: the sum is the physical memory
the family holds together). Both peaks are reported; PSS is the one to hold against a memory budget.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

MARKERS = ("ray::", "raylet", "gcs_server", "ray/_private", "ray/dashboard", "pipeline.cli", "vidseek")


def _family_memory() -> tuple[int, int]:
    """(sum of RSS, sum of PSS) in bytes over this process and every vidseek / Ray process."""
    me = os.getpid()
    rss = pss = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if int(proc.name) != me and not any(m in cmd for m in MARKERS):
                continue
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
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self._sample()
            self._halt.wait(self.interval)

    def _sample(self) -> None:
        rss, pss = _family_memory()
        self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)

    def __enter__(self) -> "PeakRSS":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self.join()
        self._sample()

    @property
    def peak_gb(self) -> float:
        return round(self.peak / 2**30, 2)

    @property
    def peak_pss_gb(self) -> float:
        return round(self.peak_pss / 2**30, 2)
