"""Pipeline efficiency and peers, measured in one run on the same videos and model.

Figures (sampled frames per second):
  decode-only   VideoDecoder over the library in one process per core (what decoding alone can do)
  encode-only   ImageEncoder on already-decoded frames with all cores (what CLIP alone can do)
  vidseek       `run_index` end to end (local Ray, Milvus Lite): wall clock including Ray start-up and
                planning; streaming (incl. actor start-up and pipeline fill); and steady state (the job's second half:
                frames finished after half the videos ÷ the time they took); with --marginal, the marginal
                rate (index half the library in its own job: Δframes ÷ Δwall between the two jobs, every fixed
                cost cancelled), what a big library approaches
  peer (a)      sequential loop: decode, encode, insert one video at a time (Towhee / clip-video-encode style)
  peer (b)      decode every frame, then sample (how Ray Data's read_videos feeds a pipeline), then encode
Efficiency = vidseek ÷ min(decode-only, encode-only). Ratios are what to compare across machines.

    python bench/pipeline_efficiency.py --model tiny-random --resolution 360p
    python bench/pipeline_efficiency.py --model ViT-B-32 --resolution 720p --sampling keyframes
    python bench/pipeline_efficiency.py --smoke --json        # tiny sizes, checks that it runs (CI)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from media import make_library  # noqa: E402

from vidseek.operators.decode import decode_frames  # noqa: E402
from vidseek.operators.encode import encode_images, load_clip  # noqa: E402
from vidseek.operators.frame_table import FrameTable  # noqa: E402
from vidseek.operators.sampling import SamplingPlan  # noqa: E402


def _decode_one(args) -> tuple[int, float]:
    path, preprocess, sampling = args
    frames, _, _, summary = decode_frames(path, preprocess, sampling)
    return len(frames), summary.duration


def decode_only(paths: list[str], preprocess, sampling: str, procs: int) -> tuple[float, int, float]:
    with mp.get_context("spawn").Pool(procs) as pool:
        pool.map(_decode_one, [(paths[0], preprocess, "uniform:1")] * procs, chunksize=1)  # imports, warm-up
        t = time.perf_counter()
        res = pool.map(_decode_one, [(p, preprocess, sampling) for p in paths], chunksize=1)
        dt = time.perf_counter() - t
    n = sum(r[0] for r in res)
    return n / dt, n, sum(r[1] for r in res)


def encode_only(clip, n_frames: int, batch: int) -> float:
    s = clip.preprocess.size
    frames = np.random.default_rng(0).integers(0, 255, (min(n_frames, 2048), s, s, 3), dtype=np.uint8)
    encode_images(clip, frames[:batch], batch)  # warm-up
    t = time.perf_counter()
    encode_images(clip, frames, batch)
    return len(frames) / (time.perf_counter() - t)


def vidseek_index(lib: Path, model: str, sampling: str, store: str) -> dict:
    from memory import PeakRSS
    from timings import StreamTimer

    from vidseek.pipeline.index_job import IndexConfig, run_index

    t = time.perf_counter()
    with PeakRSS(interval=2.0) as mem:  # /proc/*/smaps_rollup reads cost CPU the job would use
        timer = StreamTimer()
        s = run_index(
            IndexConfig(
                source=str(lib), store=store, model=model, pretrained="none", sampling=sampling, progress=False
            ),
            observer=timer,
        )
    wall = time.perf_counter() - t
    return {
        "frames": s.frames,
        "wall_fps": s.frames / wall,
        "stream_fps": s.frames / (timer.stream_s or float("inf")),
        "steady_fps": timer.steady_frames_per_s,
        "wall_s": wall,
        "stream_s": timer.stream_s,
        "half_done_s": timer.half_done_s,
        "video_s_per_s_steady": timer.steady_video_seconds_per_s,
        "video_s_per_s_wall": s.video_seconds / wall,
        "video_s": s.video_seconds,
        "failed": s.failed,
        "peak_rss_gb": mem.peak_gb,
        "peak_pss_gb": mem.peak_pss_gb,
        "cpu_s_by_role": mem.cpu_by_role(),
    }


def marginal_rate(paths: list[str], model: str, sampling: str, tmp: Path, full: dict) -> dict:
    """End-to-end throughput with the fixed costs cancelled: index the first half of the library in a fresh
    job (same start-up), then (full − half) frames ÷ (full − half) wall seconds. ``full``: the whole run."""
    half_lib = tmp / "half-library"
    half_lib.mkdir()
    for p in paths[: max(1, len(paths) // 2)]:
        (half_lib / Path(p).name).symlink_to(p)
    half = vidseek_index(half_lib, model, sampling, str(tmp / "half.db"))
    dt = full["wall_s"] - half["wall_s"]
    ok = dt > 0 and full["frames"] > half["frames"]
    return {
        "frames_per_s": (full["frames"] - half["frames"]) / dt if ok else float("nan"),
        "video_s_per_s": (full["video_s"] - half["video_s"]) / dt if ok else float("nan"),
        "half_wall_s": half["wall_s"],
    }


def peer_sequential(paths: list[str], clip, sampling: str, store: str) -> float:
    """Decode, encode, insert one video at a time (no overlap between stages)."""
    import torch

    from vidseek.operators.aggregate import mean_pool
    from vidseek.store.video_store import VideoStore

    vs = VideoStore(store)
    vs.ensure_model(clip.stamp())
    t = time.perf_counter()
    n = 0
    for i, p in enumerate(paths):
        frames, t0, t1, _ = decode_frames(p, clip.preprocess, sampling)
        vec = encode_images(clip, frames)
        vs.insert_frames(f"seq{i}", FrameTable.of(np.arange(len(vec)), (t0 + t1) / 2, t0, t1, vec))
        vs.upsert_videos(
            [
                {
                    "video_id": f"seq{i}",
                    "path": p,
                    "n_frames": len(vec),
                    "mean_vec": mean_pool(torch.from_numpy(vec)[None])[0].numpy(),
                }
            ]
        )
        n += len(vec)
    dt = time.perf_counter() - t
    vs.close()
    return n / dt


def peer_decode_all(paths: list[str], clip, sampling: str) -> float:
    """Decode every frame (resized), then keep the sampled ones, then encode."""
    import av

    plan = SamplingPlan.parse(sampling)
    t = time.perf_counter()
    n = 0
    for p in paths:
        with av.open(p) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            frames, times = [], []
            for f in c.decode(s):
                frames.append(f.to_ndarray(width=clip.preprocess.size, height=clip.preprocess.size, format="rgb24"))
                times.append(f.time)
        times = np.array(times)
        want = plan.spans(float(times[-1]))[0] if plan.kind != "keyframes" else times[::250]
        idx = np.clip(np.searchsorted(times, want, side="right") - 1, 0, len(times) - 1)
        vec = encode_images(clip, np.stack([frames[i] for i in idx]))
        n += len(vec)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny-random")
    ap.add_argument("--resolution", default="360p", choices=["360p", "720p", "1080p"])
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--sampling", default="fps:1")
    ap.add_argument("--media", default=os.environ.get("VIDSEEK_BENCH_MEDIA", "/tmp/vidseek-bench-media"))
    ap.add_argument("--peers", action="store_true", help="also run the two peer pipelines")
    ap.add_argument(
        "--marginal",
        action="store_true",
        help="also index half the library in its own job: marginal throughput, fixed costs cancelled",
    )
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.videos, args.seconds, args.peers, args.marginal = 2, 4, True, True
    lib = make_library(Path(args.media), args.resolution, args.videos, args.seconds)
    paths = sorted(str(p) for p in lib.glob("*.mp4"))
    clip = load_clip(args.model, "none", device="auto")
    procs = os.cpu_count() or 1
    dec_fps, n_frames, video_s = decode_only(paths, clip.preprocess, args.sampling, procs)
    enc_fps = encode_only(clip, n_frames, 64 if clip.device.type == "cpu" else 512)
    tmp = Path(tempfile.mkdtemp(prefix="vidseek-bench-"))
    try:
        e2e = vidseek_index(lib, args.model, args.sampling, str(tmp / "e2e.db"))
        marginal = marginal_rate(paths, args.model, args.sampling, tmp, e2e) if args.marginal else None
        peers = {}
        if args.peers:
            peers["sequential"] = peer_sequential(paths, clip, args.sampling, str(tmp / "seq.db"))
            peers["decode_all"] = peer_decode_all(paths, clip, args.sampling)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ceiling = min(dec_fps, enc_fps)
    out = {
        "model": args.model,
        "resolution": args.resolution,
        "sampling": args.sampling,
        "videos": len(paths),
        "video_seconds": round(video_s, 1),
        "frames": n_frames,
        "cores": procs,
        "device": str(clip.device),
        "decode_only_fps": round(dec_fps, 2),
        "encode_only_fps": round(enc_fps, 2),
        "vidseek_wall_fps": round(e2e["wall_fps"], 2),
        "vidseek_stream_fps": round(e2e["stream_fps"], 2),
        "vidseek_steady_fps": round(e2e["steady_fps"], 2),
        "vidseek_video_s_per_s_steady": round(e2e["video_s_per_s_steady"], 2),
        "ray_and_setup_s": round(e2e["wall_s"] - e2e["stream_s"], 1),
        "half_videos_done_s": round(e2e["half_done_s"], 1),
        "peak_rss_gb_all_processes": e2e["peak_rss_gb"],
        "peak_pss_gb_all_processes": e2e["peak_pss_gb"],
        "vidseek_cpu_s_by_role": e2e["cpu_s_by_role"],
        "efficiency_wall": round(e2e["wall_fps"] / ceiling, 3),
        "efficiency_stream": round(e2e["stream_fps"] / ceiling, 3),
        "efficiency_steady": round(e2e["steady_fps"] / ceiling, 3),
    }
    if marginal:
        out["vidseek_marginal_fps"] = round(marginal["frames_per_s"], 2)
        out["vidseek_marginal_video_s_per_s"] = round(marginal["video_s_per_s"], 2)
        out["half_library_wall_s"] = round(marginal["half_wall_s"], 1)
        out["full_library_wall_s"] = round(e2e["wall_s"], 1)
        out["efficiency_marginal"] = round(marginal["frames_per_s"] / ceiling, 3)
    for name, fps in peers.items():
        out[f"peer_{name}_fps"] = round(fps, 2)
        out[f"vidseek_vs_{name}_steady"] = round(e2e["steady_fps"] / fps, 2)
        out[f"vidseek_vs_{name}_wall"] = round(e2e["wall_fps"] / fps, 2)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:32s} {v}")


if __name__ == "__main__":
    main()
