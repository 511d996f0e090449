"""A job observer for benchmarks: the index job's streaming time and its second half's rate.

Passed to ``run_index(cfg, observer=StreamTimer())``; production jobs pass none (``JobObserver`` does
nothing). The second-half rate is an upper estimate of the steady rate: frames buffered during start-up
and videos finished in bursts can land in it; NaN when that half is too short to time (under a tenth of
the streaming time: a small job whose videos finish in one or two writer batches).
"""

from __future__ import annotations

import time


class StreamTimer:
    def __init__(self) -> None:
        self.t0 = 0.0
        self.stream_s = 0.0  # streaming execution: first batch requested → last video written
        self.half_done_s = 0.0  # → half of the videos finished
        self.frames = self.frames_at_half = 0
        self.video_s = self.video_s_at_half = 0.0

    def streaming_started(self) -> None:
        self.t0 = time.perf_counter()

    def video_finished(self, summary, total: int) -> None:
        self.stream_s = time.perf_counter() - self.t0
        self.frames, self.video_s = summary.frames, summary.video_seconds
        if not self.half_done_s and 2 * (summary.indexed + summary.failed) >= total:
            self.half_done_s, self.frames_at_half, self.video_s_at_half = self.stream_s, self.frames, self.video_s

    def _second_half_rate(self, total: float, at_half: float) -> float:
        dt = self.stream_s - self.half_done_s
        return (total - at_half) / dt if dt > 0.1 * self.stream_s else float("nan")

    @property
    def steady_frames_per_s(self) -> float:
        return self._second_half_rate(self.frames, self.frames_at_half)

    @property
    def steady_video_seconds_per_s(self) -> float:
        return self._second_half_rate(self.video_s, self.video_s_at_half)
