"""Valid videos at the edges of what a decoder meets: very short clips, long-held frames, gaps, cuts, rates.

Every file is a valid video that ffmpeg decodes in full; vidseek must index each with every backend
(docs/decoding.md, "What a sample is"). Built with the ffmpeg binary, except the clip whose last frame is
held 5 s: ffmpeg's CLI gives the last packet one frame's duration, so that one is muxed with PyAV (FFmpeg's
libraries), which sets the packet's duration directly.
"""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np

SRC = "testsrc2=size=160x120:rate={rate}"
X264 = ("-c:v", "libx264", "-pix_fmt", "yuv420p")
VFR = ("-fps_mode", "vfr", "-enc_time_base", "1/1000", "-video_track_timescale", "1000")

# name -> ffmpeg arguments (before the output path); None: built by a function below
CORPUS: dict[str, tuple[str, ...] | None] = {
    "one_frame.mp4": ("-f", "lavfi", "-i", SRC.format(rate=25), "-frames:v", "1", *X264),
    "two_frames.mp4": ("-f", "lavfi", "-i", SRC.format(rate=25), "-frames:v", "2", *X264),
    "short_0.2s.mp4": ("-f", "lavfi", "-i", SRC.format(rate=25) + ":duration=0.2", *X264),
    "exactly_1s.mp4": ("-f", "lavfi", "-i", SRC.format(rate=25) + ":duration=1", *X264),
    "last_frame_5s.mp4": None,
    # frames every 0.04 s for 1 s, then nothing for 10 s, then 1 s more
    "vfr_gap_10s.mp4": (
        "-f",
        "lavfi",
        "-i",
        SRC.format(rate=25) + ":duration=2,settb=1/1000",
        "-vf",
        "setpts='if(lt(N,25),N*0.04,10+N*0.04)/TB'",
        *VFR,
        *X264,
    ),  # fmt: skip
    "open_gop_bframes.mp4": (
        "-f",
        "lavfi",
        "-i",
        SRC.format(rate=25) + ":duration=4",
        *X264,
        "-bf",
        "3",
        "-g",
        "12",
        "-sc_threshold",
        "0",
        "-x264-params",
        "open-gop=1",
    ),  # fmt: skip
    "editlist_negative_start.mp4": None,  # a stream-copy cut at 0.5 s: packets from -0.52 s, hidden by the edit list
    "rate_1fps.mp4": ("-f", "lavfi", "-i", SRC.format(rate=1) + ":duration=5", *X264),
    "rate_120fps.mp4": ("-f", "lavfi", "-i", SRC.format(rate=120) + ":duration=2", *X264),
    "audio_longer.mp4": (
        "-f",
        "lavfi",
        "-i",
        SRC.format(rate=25) + ":duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=5",
        *X264,
        "-c:a",
        "aac",
    ),  # fmt: skip
}

# Where decord's frames differ from a full decode, by design of decord (docs/decoding.md, "Where the backends
# differ"); `auto` decodes these with PyAV. Any other difference fails the agreement test.
DECORD_DIFFERS = {
    "open_gop_bframes.mp4": "after a seek to an open-GOP key frame decord returns a frame from later on",
    "editlist_negative_start.mp4": "decord ignores the edit list: frames before the next key frame come from later",
}


def _last_frame_held(out: Path, held_s: float = 5.0) -> None:
    """26 frames: 0.00..0.96 s every 40 ms, then one at 1.0 s shown for ``held_s`` (the video ends at 1 + held_s)."""
    tb = fractions.Fraction(1, 1000)
    with av.open(str(out), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt, s.time_base = 160, 120, "yuv420p", tb
        s.codec_context.time_base = tb
        packets = []
        for n in range(26):
            img = np.full((120, 160, 3), (37 * n) % 256, np.uint8)
            img[:, : 6 * n] = 255  # a bar that grows: every frame is distinct
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = n * 40, tb
            packets += s.encode(frame)
        packets += s.encode(None)
        for p in packets:
            if p.pts == 1000:
                p.duration = int(held_s * 1000)
            c.mux(p)


def build_edge_corpus(folder: Path, ffmpeg) -> dict[str, Path]:
    """Every file of CORPUS under ``folder`` (made once); ``ffmpeg(*args)`` runs the binary."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, args in CORPUS.items():
        out = folder / name
        if not out.exists():
            if name == "last_frame_5s.mp4":
                _last_frame_held(out)
            elif name == "editlist_negative_start.mp4":
                src = folder / "_uncut.mp4"
                ffmpeg(
                    "-f", "lavfi", "-i", SRC.format(rate=25) + ":duration=4", *X264, "-bf", "0", "-g", "50", str(src)
                )
                ffmpeg("-ss", "0.5", "-i", str(src), "-c", "copy", str(out))
                src.unlink()
            else:
                ffmpeg(*args, str(out))
        paths[name] = out
    return paths


def frames_of(path: Path, image=None) -> tuple[np.ndarray, float, float | None, list]:
    """Every frame's presentation time from a plain PyAV decode (no seeks, no skipping), where the frames end
    (the last one's start plus its own duration: ffprobe reports none for a held last frame), the container's
    duration, and ``image(stream)(frame)`` of every frame when ``image`` is given (else an empty list)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        header = float(s.duration * s.time_base) if s.duration else None
        convert = image(s) if image else None
        frames = [
            (f.time, float(f.duration * f.time_base) if f.duration else 0.0, convert and convert(f))
            for f in c.decode(s)
        ]
    times = np.array([t for t, _, _ in frames])
    return times, float(times[-1] + frames[-1][1]), header, [p for *_, p in frames] if image else []


def expected_row_count(path: Path, plan: str = "fps:1") -> int:
    """Rows the sampling contract gives this file: distinct frames on screen at the plan's sample times."""
    from vidseek.operators.sampling import SamplingPlan

    times, end, header, _ = frames_of(path)
    p = SamplingPlan.parse(plan)
    t, _, _ = p.spans(header if p.kind == "uniform" and header else end)
    return len(np.unique(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1)))
