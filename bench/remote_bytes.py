"""Bytes a URL decode reads, against the object's size: range reads, not a download (docs/decoding.md).

Generates one long low-resolution H.264 video (default 10 minutes, 320×240, 25 fps, x264 defaults: a key
frame every 250 frames, B-frames), serves it from a local HTTP server with Range support that counts the
body bytes it sends (tests/range_server.py), and decodes it by URL with ``VideoDecoder`` (PyAV over an
fsspec block-cached file) for each sampling plan. Prints, per plan: the bytes sent, their ratio to the
object's size, range requests' worth of blocks, and frames out.

    python bench/remote_bytes.py [--minutes 10] [--plans fps:1,uniform:16] [--block-sizes 65536,262144]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the range server helper

from range_server import RangeServer  # noqa: E402

from vidseek.operators import remote_source  # noqa: E402
from vidseek.operators.decode import DecodeSummary, VideoDecoder  # noqa: E402
from vidseek.operators.isolated_decode import IsolatedDecoder  # noqa: E402

DEFAULT_BLOCK = remote_source.BLOCK_SIZE
PREPROCESS = {"size": 224, "mean": [0.5] * 3, "std": [0.5] * 3, "resize_mode": "shortest", "interpolation": "bicubic"}


def make_video(path: Path, minutes: float) -> None:
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
         "-t", str(minutes * 60), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip


def measure(server: RangeServer, name: str, size: int, plan: str) -> dict:
    remote_source.KEPT.clear()  # each plan reads the object afresh, not from the last plan's kept file
    before, gets = server.sent(name), server.gets[name]
    t = time.perf_counter()
    summary = DecodeSummary()
    frames = sum(len(c.frames) for c in VideoDecoder(PREPROCESS, plan).decode(f"{server.url}/{name}", summary))
    sent = server.sent(name) - before
    return {
        "plan": plan,
        "sent_bytes": sent,
        "object_bytes": size,
        "ratio": sent / size,
        "requests": server.gets[name] - gets,
        "frames": frames,
        "seeks": summary.skips.seeks,
        "wall_s": time.perf_counter() - t,
    }


def measure_job_decoder(server: RangeServer, name: str, size: int, plan: str) -> dict:
    """The same, through the index job's decoder (``IsolatedDecoder``: its child probes the object once more
    first, for the time limit's duration, then decodes it as above)."""
    before, gets = server.sent(name), server.gets[name]
    t = time.perf_counter()
    dec = IsolatedDecoder(PREPROCESS, plan, options={"verify_objects": False})
    try:
        rows = list(dec.iter_video(f"{server.url}/{name}", "bench"))
    finally:
        dec.close()
    end = rows[-1]
    if not end.ok:
        raise SystemExit(f"decode failed: {end.error}")
    sent = server.sent(name) - before
    return {
        "plan": f"{plan} (job)",
        "sent_bytes": sent,
        "object_bytes": size,
        "ratio": sent / size,
        "requests": server.gets[name] - gets,
        "frames": end.n_frames,
        "seeks": -1,
        "wall_s": time.perf_counter() - t,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--plans", default="fps:1,uniform:16")
    ap.add_argument("--block-sizes", default=str(remote_source.BLOCK_SIZE), help="comma-separated, bytes")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vidseek-remote-bytes-") as tmp:
        video = Path(tmp) / "long.mp4"
        make_video(video, args.minutes)
        size = video.stat().st_size
        server = RangeServer(Path(tmp))
        try:
            print(f"object: {args.minutes:g} min 320x240 H.264, {size} bytes")
            for block in [int(b) for b in args.block_sizes.split(",")]:
                remote_source.BLOCK_SIZE = block  # what open_object fetches per range request
                for plan in args.plans.split(","):
                    _print(block, measure(server, video.name, size, plan))
            remote_source.BLOCK_SIZE = DEFAULT_BLOCK  # the job's child process reads with the default
            for plan in args.plans.split(","):
                _print(DEFAULT_BLOCK, measure_job_decoder(server, video.name, size, plan))
        finally:
            server.stop()


def _print(block: int, r: dict) -> None:
    seeks = f", {r['seeks']} seeks" if r["seeks"] >= 0 else ""
    print(
        f"block {block // 1024:>5} KiB {r['plan']:>17}: read {r['sent_bytes']:>10} of {r['object_bytes']} bytes, "
        f"ratio {r['ratio']:.3f} in {r['requests']} range requests; {r['frames']} frames{seeks}, {r['wall_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
