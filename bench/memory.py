"""Peak resident memory of vidseek and all of its Ray processes together, sampled from /proc."""
from __future__ import annotations

import os
import threading
from pathlib import Path

MARKERS = ("ray::", "raylet", "gcs_server", "ray/_private", "ray/dashboard", "pipeline.cli", "vidseek")


def _rss_of_family() -> int:
    me = os.getpid()
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if int(proc.name) != me and not any(m in cmd for m in MARKERS):
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return total


class PeakRSS(threading.Thread):
    """``with PeakRSS() as m: ...`` then ``m.peak_gb``: the largest sum of RSS seen (every 0.5 s)."""

    def __init__(self, interval: float = 0.5):
        super().__init__(daemon=True)
        self.interval, self.peak = interval, 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.peak = max(self.peak, _rss_of_family())
            self._halt.wait(self.interval)

    def __enter__(self) -> "PeakRSS":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self.join()
        self.peak = max(self.peak, _rss_of_family())

    @property
    def peak_gb(self) -> float:
        return round(self.peak / 2**30, 2)
