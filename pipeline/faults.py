"""Fault injection for tests: ``VIDSEEK_FAULT=point:N`` kills the job at the N-th time it reaches ``point``;
``point:N:pause=S`` instead holds the writer there for S seconds (a window for a test to break something
else at that instant, e.g. kill the store's server).

The job never reads the variable: a process's entry point does (the CLI's ``main``, a test's helper), and
passes the injector into the job as its hooks (``JobHooks.from_env``, pipeline/specs.py), so it reaches the
writer wherever it runs, inside the write stage's spec. Inert unless the variable is set. Points, in the
store writer's order of work:
``before_frames`` (frames buffered, nothing flushed), ``after_frames`` (frame rows durable, video rows
not yet written — the mid-flush crash), ``after_videos`` (video rows written). The crash is a SIGKILL of
the driver (which takes the local Ray cluster with it) followed by the writer's own hard exit, so nothing
after the point runs — the same as a power cut at that instant.
"""

from __future__ import annotations

import math
import os
import signal
import time
from typing import Mapping

POINTS = ("before_frames", "after_frames", "after_videos")
ENV = "VIDSEEK_FAULT"


def fault_spec_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    spec = (os.environ if environ is None else environ).get(ENV) or None
    if spec is not None:
        point, n, pause = _parse(spec)
        if point not in POINTS or not n.isdigit() or int(n) < 1 or (pause is not None and not _seconds(pause)):
            raise ValueError(f"{ENV}={spec!r}: use one of {POINTS} followed by :N (N ≥ 1), optionally :pause=S")
    return spec


def _parse(spec: str) -> tuple[str, str, str | None]:
    point, _, rest = spec.partition(":")
    n, _, action = rest.partition(":")
    return point, n, action.removeprefix("pause=") if action else None


def _seconds(text: str) -> float | None:
    try:
        s = float(text)
    except ValueError:
        return None
    return s if math.isfinite(s) and s > 0 else None


def fault_hooks_from_env(driver_pid: int, environ: Mapping[str, str] | None = None) -> "FaultInjector | None":
    """The writer hooks for ``VIDSEEK_FAULT`` (validated), or None when it is not set."""
    spec = fault_spec_from_env(environ)
    return FaultInjector(spec, driver_pid) if spec else None


class FaultInjector:
    """Writer hooks (``vidseek.pipeline.writer.WriterHooks``) that SIGKILL the driver, then this process, at a
    point — or pause there."""

    def __init__(self, spec: str | None, driver_pid: int | None):
        self.point, n, pause = _parse(spec or "")
        self.remaining = int(n) if n else 0
        self.pause_s = _seconds(pause) if pause else None
        self.driver_pid = driver_pid

    def reached(self, point: str) -> None:
        if point != self.point or self.remaining <= 0:
            return
        self.remaining -= 1
        if self.remaining == 0 and self.pause_s:
            time.sleep(self.pause_s)
        elif self.remaining == 0:
            if self.driver_pid:
                os.kill(self.driver_pid, signal.SIGKILL)
            os._exit(137)
