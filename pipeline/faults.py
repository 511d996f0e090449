"""Crash injection for tests: ``VIDSEEK_FAULT=point:N`` kills the job at the N-th time it reaches ``point``.

Inert unless the variable is set. Points, in the store writer's order of work:
``before_frames`` (frames buffered, nothing flushed), ``after_frames`` (frame rows durable, video rows
not yet written — the mid-flush crash), ``after_videos`` (video rows written). The crash is a SIGKILL of
the driver (which takes the local Ray cluster with it) followed by the writer's own hard exit, so nothing
after the point runs — the same as a power cut at that instant.
"""

from __future__ import annotations

import os
import signal

POINTS = ("before_frames", "after_frames", "after_videos")
ENV = "VIDSEEK_FAULT"


def fault_spec_from_env() -> str | None:
    spec = os.environ.get(ENV) or None
    if spec is not None:
        point, _, n = spec.partition(":")
        if point not in POINTS or not n.isdigit() or int(n) < 1:
            raise ValueError(f"{ENV}={spec!r}: use one of {POINTS} followed by :N (N ≥ 1)")
    return spec


def fault_hooks_from_env(driver_pid: int) -> "FaultInjector | None":
    """The writer hooks for ``VIDSEEK_FAULT`` (validated), or None when it is not set."""
    spec = fault_spec_from_env()
    return FaultInjector(spec, driver_pid) if spec else None


class FaultInjector:
    """Writer hooks (``vidseek.pipeline.writer.WriterHooks``) that SIGKILL the driver, then this process, at a point."""

    def __init__(self, spec: str | None, driver_pid: int | None):
        self.point, _, n = (spec or "").partition(":")
        self.remaining = int(n) if n else 0
        self.driver_pid = driver_pid

    def reached(self, point: str) -> None:
        if point != self.point or self.remaining <= 0:
            return
        self.remaining -= 1
        if self.remaining == 0:
            if self.driver_pid:
                os.kill(self.driver_pid, signal.SIGKILL)
            os._exit(137)
