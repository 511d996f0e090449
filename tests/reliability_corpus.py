"""The bad-input corpus: every kind of broken, odd or hostile file a video library holds, generated here.

``build_corpus(root)`` writes the files and returns {relative name: expected status} ("ok" | "failed"),
the expectation each index run is checked against file by file. Nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np


def _ff(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=120)


def _encoders() -> str:
    return subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout


def _src(seconds: float, size: str = "96x72", rate: int = 10) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={seconds}"]


def build_corpus(root: Path) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    expect: dict[str, str] = {}
    enc = _encoders()

    def good(name: str, *args: str) -> None:
        _ff(*args, str(root / name))
        expect[name] = "ok"

    h264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
    good("h264.mp4", *_src(3), *h264)
    good("vp9_realtime.webm", *_src(3), "-c:v", "libvpx-vp9", "-deadline", "realtime", "-row-mt", "1", "-cpu-used", "8")
    good("mjpeg.avi", *_src(2), "-c:v", "mjpeg")
    if "libaom-av1" in enc or "libsvtav1" in enc:
        codec = "libaom-av1" if "libaom-av1" in enc else "libsvtav1"
        good("av1.mkv", *_src(2), "-c:v", codec, *(["-cpu-used", "8"] if codec == "libaom-av1" else []))
    if "libx265" in enc:
        good("hevc.mp4", *_src(2), "-c:v", "libx265", "-x265-params", "log-level=none")
    good("vfr.mp4", *_src(4), "-vf", "setpts='if(lt(N,10),N*0.1,1+(N-10)*0.5)/TB'", "-fps_mode", "vfr", *h264)
    good("tiny_4k.mp4", *_src(0.5, "3840x2160", 4), *h264, "-preset", "ultrafast")
    good("two_by_two.mp4", *_src(1, "2x2"), "-c:v", "libx264", "-pix_fmt", "yuv444p")
    _ff(*_src(2), *h264, str(root / "rot_src.mp4"))
    _ff("-i", str(root / "rot_src.mp4"), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(root / "rotated.mp4"))
    (root / "rot_src.mp4").unlink()
    expect["rotated.mp4"] = "ok"
    good("name with spaces.mp4", *_src(1), *h264)
    good("ünïcødé 名前.mp4", *_src(1), *h264)
    good(("long" * 52) + ".mp4", *_src(1), *h264)  # 212-character name

    # a mid-file corruption: damaged packets lose their frames, the rest still indexes
    _ff(*_src(6), *h264, "-g", "10", str(root / "corrupt_mid.mp4"))
    data = bytearray((root / "corrupt_mid.mp4").read_bytes())
    mid = len(data) // 2
    data[mid : mid + 1500] = np.random.default_rng(1).integers(0, 256, 1500, dtype=np.uint8).tobytes()
    (root / "corrupt_mid.mp4").write_bytes(bytes(data))
    expect["corrupt_mid.mp4"] = "ok"

    # truncated mid-stream with the index up front: the first half decodes
    _ff(*_src(4), *h264, "-movflags", "+faststart", str(root / "trunc_src.mp4"))
    raw = (root / "trunc_src.mp4").read_bytes()
    (root / "truncated_mid.mp4").write_bytes(raw[: int(len(raw) * 0.6)])
    expect["truncated_mid.mp4"] = "ok"
    (root / "trunc_src.mp4").unlink()

    def bad(name: str, content: bytes | None = None) -> None:
        if content is not None:
            (root / name).write_bytes(content)
        expect[name] = "failed"

    bad("empty.mp4", b"")
    bad("random_bytes.mp4", os.urandom(4000))
    _ff(*_src(3), *h264, str(root / "moov_last.mp4"))  # default muxing: index (moov) at the end
    raw = (root / "moov_last.mp4").read_bytes()
    bad("truncated_before_moov.mp4", raw[: len(raw) // 2])
    (root / "moov_last.mp4").unlink()
    _ff("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(root / "audio_only.mp4"))
    bad("audio_only.mp4")
    _ff("-f", "lavfi", "-i", "testsrc=size=64x48", "-frames:v", "1", str(root / "still.png"))
    shutil.move(str(root / "still.png"), str(root / "still_image.mp4"))
    bad("still_image.mp4")
    (root / "folder.mp4").mkdir()
    bad("folder.mp4")
    _ff(*_src(1), *h264, str(root / "unreadable.mp4"))
    os.chmod(root / "unreadable.mp4", 0)
    expect["unreadable.mp4"] = "failed" if os.geteuid() != 0 else "ok"  # root reads any file
    loop = root / "loop"
    loop.mkdir()
    (loop / "self").symlink_to(loop, target_is_directory=True)  # a symlink loop in the source tree
    return expect


def expected_rows(path: Path, sampling: str = "fps:1") -> int:
    """Frame rows a file should give, from the input alone: the frames ffprobe decodes (their times and
    durations) through the sampling plan, one row per distinct frame on screen at a sample time.

    The video ends where its last decodable frame's display ends (a truncated file's header may promise
    more; the samples after the last frame would all repeat it). Independent of vidseek's decoders and of
    the store, so that a lost or duplicated row shows up."""
    import json

    from vidseek.operators.sampling import SamplingPlan

    out = subprocess.run(
        ["ffprobe", "-v", "quiet", "-select_streams", "v:0", "-show_frames", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    frames = [f for f in json.loads(out or "{}").get("frames", []) if f.get("best_effort_timestamp_time")]
    if not frames:
        return 0
    starts = np.array(sorted(float(f["best_effort_timestamp_time"]) for f in frames))
    last = max(frames, key=lambda f: float(f["best_effort_timestamp_time"]))
    step = last.get("duration_time") or last.get("pkt_duration_time")
    step = float(step) if step else (float(np.median(np.diff(starts))) if len(starts) > 1 else 0.0)
    t, _, _ = SamplingPlan.parse(sampling).spans(float(starts[-1]) + step)
    shown = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(starts) - 1)
    return len(np.unique(shown))
