"""Benchmark videos generated with ffmpeg (cached): moving test patterns at 360p / 720p, H.264, default GOP."""

from __future__ import annotations

import subprocess
from pathlib import Path

RESOLUTIONS = {"360p": "640x360", "720p": "1280x720", "1080p": "1920x1080"}


def make_library(root: Path, resolution: str = "360p", n: int = 4, seconds: int = 30, fps: int = 30) -> Path:
    """``n`` clips of ``seconds`` s at ``resolution`` (a name of RESOLUTIONS or ``WxH``) under
    root/<res>-<n>x<s>s/ (reused when present)."""
    out = root / f"{resolution}-{n}x{seconds}s"
    out.mkdir(parents=True, exist_ok=True)
    size = RESOLUTIONS.get(resolution, resolution)
    for i in range(n):
        path = out / f"clip{i:03d}.mp4"
        if path.exists() and path.stat().st_size > 0:
            continue
        encode_testsrc(path, size, seconds, fps, f",hue=h={37 * i}")
    return out


def encode_testsrc(path: Path, size: str, seconds: int, fps: int, filters: str = "", preset: str = "veryfast") -> Path:
    """One H.264 file of ffmpeg's testsrc2 pattern, written to a temp name then renamed (never half a file).

    testsrc2 moves every frame, so the decoder cannot skip work; x264 defaults otherwise (GOP 250, B-frames)."""
    tmp = path.with_suffix(".tmp.mp4")
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={size}:rate={fps}:duration={seconds}{filters}",
            "-c:v",
            "libx264",
            "-preset",
            preset,
            "-pix_fmt",
            "yuv420p",
            str(tmp),
        ],
        check=True,
    )
    tmp.rename(path)
    return path
