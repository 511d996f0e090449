"""Decode efficiency: sampled frames per CPU-second, vidseek's decoders against ffmpeg's own fps filter.

One run, one process at a time, CPU time (user + system, every thread) of exactly the work measured:

  ffmpeg fps filter   `ffmpeg -threads 1 -i X -vf fps=R,scale=224:224 -f null -` (the external ceiling a
                      user reaches for; it decodes every frame)
  decord get_batch    decord.VideoReader at 224×224, get_batch of the on-screen frames (raw, no vidseek)
  vidseek decord      VideoDecoder(backend="decord")
  vidseek pyav full   VideoDecoder(backend="pyav", sample_aware=False): decodes every frame
  vidseek pyav        VideoDecoder(backend="pyav"): sample-aware (operators/sample_aware.py), same rows
  + no loop filter    the same with skip_loop_filter (an approximation: different pixels)

Inputs (generated, cached under --media): testsrc2 at 360p/720p/1080p x264 defaults; 360p x264 without
B-frames; VP9, HEVC and AV1 at 360p. Then `uniform:16` of a 1-hour video (180p, so it encodes in about
a minute here) against decoding it whole. Every ratio is against ffmpeg's figure on the same input, in the
same run.

    python bench/decode_efficiency.py              # the table (about 10 min on 2 cores)
    python bench/decode_efficiency.py --smoke --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vidseek.operators.decode import DecodeSummary, VideoDecoder  # noqa: E402
from vidseek.operators.preprocess import PreprocessConfig  # noqa: E402

CFG = PreprocessConfig(size=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
INPUTS = {  # name: (size, ffmpeg encoder arguments)
    "360p x264": ("640x360", ["-c:v", "libx264", "-preset", "veryfast"]),
    "720p x264": ("1280x720", ["-c:v", "libx264", "-preset", "veryfast"]),
    "1080p x264": ("1920x1080", ["-c:v", "libx264", "-preset", "veryfast"]),
    "360p x264 no B-frames": ("640x360", ["-c:v", "libx264", "-preset", "veryfast", "-bf", "0"]),
    "360p VP9": ("640x360", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M"]),
    "360p HEVC": ("640x360", ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"]),
    "360p AV1": ("640x360", ["-c:v", "libsvtav1", "-preset", "12"]),
}


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def make(media: Path, name: str, size: str, enc: list[str], seconds: int, fps: int) -> Path:
    ext = ".webm" if "vp9" in " ".join(enc) else ".mp4"
    path = media / f"{name.replace(' ', '_')}-{seconds}s-{fps}fps{ext}"
    if not path.exists():
        tmp = path.with_name("tmp-" + path.name)
        src = f"testsrc2=size={size}:rate={fps}:duration={seconds}"
        cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", src, *enc, "-pix_fmt", "yuv420p", str(tmp)]
        subprocess.run(cmd, check=True)
        tmp.rename(path)
    return path


def ffmpeg_fps(path: Path, rate: float) -> tuple[float, int]:
    """CPU-seconds of the ffmpeg CLI's fps filter, and the frames it put out."""
    c0 = cpu_children()
    cmd = ["ffmpeg", "-hide_banner", "-nostats", "-threads", "1", "-i", str(path)]
    cmd += ["-vf", f"fps={rate},scale=224:224", "-f", "null", "-"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    frames = [int(x.split("frame=")[1].split()[0]) for x in out.replace("\r", "\n").splitlines() if "frame=" in x]
    return cpu_children() - c0, (frames[-1] if frames else 0)


def decord_get_batch(path: Path, sample_t: np.ndarray) -> tuple[float, int]:
    import decord

    c0 = cpu_self()
    vr = decord.VideoReader(str(path), width=224, height=224, num_threads=1)
    starts = vr.get_frame_timestamp(np.arange(len(vr)))[:, 0]
    idx = np.unique(np.clip(np.searchsorted(starts, sample_t, side="right") - 1, 0, len(vr) - 1))
    n = len(vr.get_batch(list(idx)).asnumpy())
    return cpu_self() - c0, n


def vidseek(path: Path, plan: str, **kw) -> tuple[float, int, DecodeSummary]:
    c0 = cpu_self()
    s = DecodeSummary()
    n = sum(len(c.frames) for c in VideoDecoder(CFG, plan, chunk_frames=64, **kw).decode(str(path), s))
    return cpu_self() - c0, n, s


def fps_table(media: Path, seconds: int, rate: float, names: list[str]) -> list[dict]:
    rows = []
    for name in names:
        size, enc = INPUTS[name]
        try:
            path = make(media, name, size, enc, seconds, 30)
        except subprocess.CalledProcessError as e:
            rows.append({"input": name, "error": f"could not encode: {e}"})
            continue
        plan = f"fps:{rate:g}"
        row: dict = {"input": name, "seconds": seconds}
        cpu, n = ffmpeg_fps(path, rate)
        row["ffmpeg fps filter"] = n / cpu
        sample_t = (np.arange(int(seconds * rate)) + 0.5) / rate
        try:
            cpu, n = decord_get_batch(path, sample_t)
            row["decord get_batch"] = n / cpu
            cpu, n, _ = vidseek(path, plan, backend="decord")
            row["vidseek decord"] = n / cpu
        except Exception as e:  # noqa: BLE001 — decord refuses some files (e.g. AV1 builds without dav1d)
            row["decord error"] = f"{type(e).__name__}: {str(e)[:120]}"
        cpu, n, _ = vidseek(path, plan, backend="pyav", sample_aware=False)
        row["vidseek pyav full"] = n / cpu
        cpu, n, s = vidseek(path, plan, backend="pyav")
        row["vidseek pyav"] = n / cpu
        row["frames decoded"] = f"{s.skips.decoded}/{s.skips.packets}"
        cpu, n, _ = vidseek(path, plan, backend="pyav", skip_loop_filter=True)
        row["+ no loop filter"] = n / cpu
        row["frames"] = n
        rows.append(row)
        print(_fmt(row), file=sys.stderr, flush=True)
    return rows


def long_video(media: Path, seconds: int, n: int) -> dict:
    """uniform:N of a long video, sample-aware (seeks) against decoding it whole."""
    path = make(media, "long 180p x264", "320x180", ["-c:v", "libx264", "-preset", "ultrafast"], seconds, 25)
    plan = f"uniform:{n}"
    t0 = time.perf_counter()
    cpu_aware, n_aware, s = vidseek(path, plan, backend="pyav")
    wall_aware = time.perf_counter() - t0
    t0 = time.perf_counter()
    cpu_whole, n_whole, _ = vidseek(path, plan, backend="pyav", sample_aware=False)
    wall_whole = time.perf_counter() - t0
    assert n_aware == n_whole, (n_aware, n_whole)
    cpu_decord, n_decord, _ = vidseek(path, plan, backend="decord")
    return {
        "input": f"{seconds} s 180p x264, {plan}",
        "cpu_s sample-aware": cpu_aware,
        "cpu_s whole": cpu_whole,
        "cpu_s decord": cpu_decord,
        "speed-up (cpu)": cpu_whole / cpu_aware,
        "speed-up (wall)": wall_whole / wall_aware,
        "decord / sample-aware (cpu)": cpu_decord / cpu_aware,
        "seeks": s.skips.seeks,
        "frames": n_aware,
    }


def _fmt(row: dict) -> str:
    return "  ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def print_table(rows: list[dict], long: dict) -> None:
    cols = ["ffmpeg fps filter", "decord get_batch", "vidseek decord", "vidseek pyav full", "vidseek pyav"]
    cols.append("+ no loop filter")
    print("sampled frames per CPU-second (× the ffmpeg fps filter on the same input)\n")
    print("| input | " + " | ".join(cols) + " | frames decoded (sample-aware) |")
    print("|---|" + "---:|" * len(cols) + "---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['input']} | {r['error']} |")
            continue
        base = r["ffmpeg fps filter"]
        cells = [f"{r[c]:.0f} ({r[c] / base:.2f}×)" if c in r else "—" for c in cols]
        print(f"| {r['input']} | " + " | ".join(cells) + f" | {r['frames decoded']} |")
    print(
        f"\n{long['input']}: sample-aware {long['cpu_s sample-aware']:.1f} CPU-s ({long['seeks']} seeks), "
        f"decoding it whole {long['cpu_s whole']:.1f} CPU-s: {long['speed-up (cpu)']:.1f}× less CPU, "
        f"{long['speed-up (wall)']:.1f}× less wall; decord {long['cpu_s decord']:.1f} CPU-s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60, help="length of each input of the fps table")
    ap.add_argument("--rate", type=float, default=1.0, help="fps:R sampling")
    ap.add_argument("--long-seconds", type=int, default=3600)
    ap.add_argument("--inputs", default=",".join(INPUTS), help="comma-separated names of INPUTS")
    ap.add_argument("--media", default=os.environ.get("VIDSEEK_BENCH_MEDIA", "/tmp/vidseek-bench-media"))
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    names = [n.strip() for n in args.inputs.split(",") if n.strip()]
    if args.smoke:
        args.seconds, args.long_seconds, names = 4, 120, ["360p x264", "360p VP9"]
    media = Path(args.media) / "decode"
    media.mkdir(parents=True, exist_ok=True)
    rows = fps_table(media, args.seconds, args.rate, names)
    long = long_video(media, args.long_seconds, 16)
    print_table(rows, long)
    if args.json:
        print(json.dumps({"fps_table": rows, "long_video": long}))


if __name__ == "__main__":
    main()
