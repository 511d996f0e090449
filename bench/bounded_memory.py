"""Bounded memory: peak memory of a whole `vidseek index` job (driver + every Ray process) on two shapes of
library that break naive pipelines — one hour-long video (a per-video buffer would hold 3,600 frames) and
1,000 short clips (per-video state and bookkeeping that never gets freed).

Prints, per library: videos, frames, wall time, and the peak sums of RSS and of PSS over the job's processes
(bench/memory.py says why PSS is the physical figure: RSS counts shared pages once per process).

    python bench/bounded_memory.py                            # 1 h 360p video + 1,000 × 2 s clips
    python bench/bounded_memory.py --hour-s 20 --clips 6 --clip-s 2 --json   # smoke size (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from media import RESOLUTIONS, encode_testsrc  # noqa: E402
from memory import PeakRSS  # noqa: E402


def make_long_video(root: Path, seconds: int, resolution: str = "360p") -> Path:
    """One H.264 file of ``seconds`` s (x264 defaults: GOP 250, B-frames), cached under root."""
    path = root / f"long-{resolution}-{seconds}s.mp4"
    if not path.exists():
        encode_testsrc(path, RESOLUTIONS[resolution], seconds, 25, preset="ultrafast")
    return path


def make_clip_library(root: Path, n: int, seconds: int) -> Path:
    """``n`` clips of ``seconds`` s cut (stream copy) from one encode: a GOP starts every clip, so each
    is a valid standalone file; one ffmpeg run instead of ``n``."""
    out = root / f"clips-{n}x{seconds}s"
    if out.exists() and len(list(out.glob("*.mp4"))) == n:
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    fps = 25
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=320x180:rate={fps}:duration={n * seconds}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-g",
            str(fps * seconds),
            "-keyint_min",
            str(fps * seconds),
            "-sc_threshold",
            "0",
            "-f",
            "segment",
            "-segment_time",
            str(seconds),
            "-reset_timestamps",
            "1",
            str(out / "clip%04d.mp4"),
        ],
        check=True,
    )
    made = len(list(out.glob("*.mp4")))
    if made != n:
        raise RuntimeError(f"ffmpeg cut {made} clips, expected {n}")
    return out


def index_with_peak(source: Path, store: str, model: str, sampling: str) -> dict:
    from vidseek.pipeline.index_job import IndexConfig, run_index

    t = time.perf_counter()
    with PeakRSS() as mem:
        s = run_index(
            IndexConfig(
                source=str(source), store=store, model=model, pretrained="none", sampling=sampling, progress=False
            )
        )
    return {
        "videos": s.indexed,
        "failed": s.failed,
        "frames": s.frames,
        "wall_s": round(time.perf_counter() - t, 1),
        "peak_rss_gb": mem.peak_gb,
        "peak_pss_gb": mem.peak_pss_gb,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hour-s", type=int, default=3600, help="length of the long video (s)")
    ap.add_argument("--clips", type=int, default=1000)
    ap.add_argument("--clip-s", type=int, default=2)
    ap.add_argument("--model", default="tiny-random")
    ap.add_argument("--sampling", default="fps:1")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    media = Path(os.environ.get("VIDSEEK_BENCH_MEDIA", Path(tempfile.gettempdir()) / "vidseek-bench-media"))
    media.mkdir(parents=True, exist_ok=True)
    long_dir = media / f"long-{args.hour_s}s"
    long_dir.mkdir(exist_ok=True)
    make_long_video(long_dir, args.hour_s)
    clips = make_clip_library(media, args.clips, args.clip_s)
    tmp = Path(tempfile.mkdtemp(prefix="vidseek-mem-"))
    try:
        out = {
            "model": args.model,
            "sampling": args.sampling,
            "long_video": index_with_peak(long_dir, str(tmp / "long.db"), args.model, args.sampling),
            "clip_library": index_with_peak(clips, str(tmp / "clips.db"), args.model, args.sampling),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(out))
        return
    print(
        f"{'library':14s} {'videos':>7s} {'failed':>6s} {'frames':>7s} {'wall s':>7s} {'peak RSS GB':>12s} "
        f"{'peak PSS GB':>12s}"
    )
    for name in ("long_video", "clip_library"):
        r = out[name]
        print(
            f"{name:14s} {r['videos']:7d} {r['failed']:6d} {r['frames']:7d} {r['wall_s']:7.1f} "
            f"{r['peak_rss_gb']:12.2f} {r['peak_pss_gb']:12.2f}"
        )


if __name__ == "__main__":
    main()
