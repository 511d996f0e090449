"""Sampling plans by *timestamp* (never index × average fps, which drifts on variable-frame-rate files).

- ``fps:R``      one sample per 1/R-second window, at the window's midpoint (default ``fps:1``);
- ``uniform:N``  N samples at the midpoints of N equal chunks (CLIP4Clip / CLIP-Hitchhiker style);
- ``keyframes``  every key frame, decoded without the frames between them (fast indexing).
Each sample owns a time span [start, end) that later becomes a search hit's moment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SamplingPlan:
    kind: str  # "fps" | "uniform" | "keyframes"
    value: float = 0.0

    @classmethod
    def parse(cls, spec: "str | SamplingPlan") -> "SamplingPlan":
        if isinstance(spec, SamplingPlan):
            return spec
        text = str(spec).strip().lower()
        if text == "keyframes":
            return cls("keyframes")
        kind, _, arg = text.partition(":")
        try:
            if kind == "fps" and float(arg) > 0:
                return cls("fps", float(arg))
            if kind == "uniform" and int(arg) > 0 and float(arg) == int(arg):
                return cls("uniform", int(arg))
        except ValueError:
            pass
        raise ValueError(f"bad sampling plan {spec!r}: use fps:R (R > 0), uniform:N (N ≥ 1) or keyframes")

    def __str__(self) -> str:
        if self.kind == "keyframes":
            return "keyframes"
        v = int(self.value) if float(self.value).is_integer() else self.value
        return f"{self.kind}:{v}"

    def spans(self, duration: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample times and their spans (t, start, end), each [N] float64, for a video of ``duration`` s.

        The contract both decoders keep (docs/decoding.md, "What a sample is"):
        - ``fps:R``: a sample at the midpoint of every 1/R window whose midpoint lies inside [0, duration);
          the last window's span ends at ``duration``. A video too short to hold one midpoint (≤ half a
          window, e.g. a one-frame clip) still gets one sample: its time clamped to the video's end (the
          last frame on screen), spanning the whole video.
        - ``uniform:N``: the midpoints of N equal chunks of ``duration``.
        """
        if self.kind == "keyframes":
            raise ValueError("keyframe sampling has no fixed times; the decoder finds them")
        if not duration or duration <= 0:
            z = np.zeros(1)
            return z, z, z
        if self.kind == "fps":
            step = 1.0 / self.value
            n = int(np.ceil(duration / step - 0.5 - 1e-9))  # windows whose midpoint lies strictly inside
            if n <= 0:
                return np.array([float(duration)]), np.zeros(1), np.array([float(duration)])
            start = np.arange(n) * step
            t = start + step / 2.0
        else:
            n = int(self.value)
            step = duration / n
            start = np.arange(n) * step
            t = start + step / 2.0
        end = np.minimum(start + step, duration)
        end[-1] = duration  # the last sample also covers a trailing partial window
        return t, start, end
