"""GPU benchmark (one GPU, 16 cores, ≤ 8 minutes): is indexing decode-bound, and by how much?

Prints, measured in one run on the same videos:
  encode-only   ViT-B-32 bf16 image tower img/s (and with torch.compile when --compile)
  decode-only   sampled frames/s with one decoder process per core, for fps:1 and keyframes
  vidseek       end-to-end `run_index` frames/s for fps:1 and keyframes (steady state: the job's second half;
                wall: including Ray start-up), with mean GPU utilisation and CPU seconds per process role
  ratios        encode-only ÷ decode-only (how decode-bound), end-to-end ÷ min(ceilings) (efficiency)

    python bench/gpu_pipeline.py                    # on the GPU machine (random ViT-B-32 weights)
    python bench/gpu_pipeline.py --smoke            # CPU, tiny model, seconds: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from media import make_library  # noqa: E402
from pipeline_efficiency import decode_only, marginal_rate, vidseek_index  # noqa: E402

from vidseek.operators.encode import encode_images, load_clip  # noqa: E402


class GpuSampler(threading.Thread):
    """Mean GPU utilisation (%) from nvidia-smi, sampled every 0.5 s while running."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                ).stdout.split()
                self.samples.append(float(out[0]))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                return
            self.stop.wait(0.5)

    def mean(self) -> float | None:
        return round(float(np.mean(self.samples)), 1) if self.samples else None


def encode_rate(clip, n: int, batch: int, compile_model: bool = False) -> float:
    s = clip.preprocess.size
    frames = np.random.default_rng(0).integers(0, 255, (n, s, s, 3), dtype=np.uint8)
    if compile_model:
        clip.model.visual = torch.compile(clip.model.visual)
    encode_images(clip, frames[: batch * 2], batch)  # warm-up (and compile)
    if clip.device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    encode_images(clip, frames, batch)
    if clip.device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--resolution", default="360p")
    ap.add_argument("--videos", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--media", default=os.environ.get("VIDSEEK_BENCH_MEDIA", "/tmp/vidseek-bench-media"))
    ap.add_argument(
        "--marginal",
        action="store_true",
        help="also index half the library in its own job per mode: marginal video-s/s, fixed costs cancelled",
    )
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.model, args.videos, args.seconds = "tiny-random", 2, 4
    t_all = time.perf_counter()
    lib = make_library(Path(args.media), args.resolution, args.videos, args.seconds)
    paths = sorted(str(p) for p in lib.glob("*.mp4"))
    clip = load_clip(args.model, "none")
    gpu = clip.device.type == "cuda"
    batch = 1024 if gpu else 64
    out = {
        "model": args.model,
        "device": torch.cuda.get_device_name(0) if gpu else "cpu",
        "dtype": str(clip.dtype),
        "cores": os.cpu_count(),
        "videos": len(paths),
        "resolution": args.resolution,
    }
    out["encode_only_img_s"] = round(encode_rate(clip, 16384 if gpu else 256, batch), 1)
    if args.compile and gpu:
        out["encode_only_compiled_img_s"] = round(encode_rate(load_clip(args.model, "none"), 16384, batch, True), 1)
    tmp = Path(tempfile.mkdtemp(prefix="vidseek-gpu-bench-"))
    try:
        for sampling in ("fps:1", "keyframes"):
            dec_fps, frames, video_s = decode_only(paths, clip.preprocess, sampling, os.cpu_count() or 1)
            sampler = GpuSampler()
            sampler.start()
            e2e = vidseek_index(lib, args.model, sampling, str(tmp / f"{sampling.replace(':', '')}.db"))
            sampler.stop.set()
            key = sampling.replace(":", "")
            if args.marginal:
                sub = tmp / f"marginal-{key}"
                sub.mkdir()
                m = marginal_rate(paths, args.model, sampling, sub, e2e)
                out[f"{key}_vidseek_marginal_video_s_per_s"] = round(m["video_s_per_s"], 1)
                out[f"{key}_half_library_wall_s"] = round(m["half_wall_s"], 1)
                out[f"{key}_full_library_wall_s"] = round(e2e["wall_s"], 1)
            out[f"{key}_decode_only_fps"] = round(dec_fps, 1)
            out[f"{key}_video_s_per_s_decode_only"] = round(dec_fps * video_s / frames, 1) if frames else 0
            out[f"{key}_vidseek_steady_fps"] = round(e2e["steady_fps"], 1)
            out[f"{key}_vidseek_wall_fps"] = round(e2e["wall_fps"], 1)
            out[f"{key}_vidseek_video_s_per_s"] = round(e2e["video_s_per_s_steady"], 1)
            out[f"{key}_vidseek_video_s_per_s_wall"] = round(e2e["video_s_per_s_wall"], 1)
            out[f"{key}_vidseek_cpu_s_by_role"] = e2e["cpu_s_by_role"]
            out[f"{key}_gpu_util_pct"] = sampler.mean()
            out[f"{key}_decode_bound_ratio"] = round(out["encode_only_img_s"] / dec_fps, 1) if dec_fps else None
            out[f"{key}_efficiency_steady"] = round(e2e["steady_fps"] / min(dec_fps, out["encode_only_img_s"]), 3)
        # indexing speed in seconds of video per second: key frames sample fewer frames, so frames/s misleads
        out["keyframes_vs_fps1_video_s_per_s"] = (
            round(out["keyframes_vidseek_video_s_per_s"] / out["fps1_vidseek_video_s_per_s"], 2)
            if out["fps1_vidseek_video_s_per_s"]
            else None
        )
        if args.marginal:
            out["keyframes_vs_fps1_marginal"] = round(
                out["keyframes_vidseek_marginal_video_s_per_s"] / out["fps1_vidseek_marginal_video_s_per_s"], 2
            )
        out["keyframes_vs_fps1_wall"] = (
            round(out["keyframes_vidseek_video_s_per_s_wall"] / out["fps1_vidseek_video_s_per_s_wall"], 2)
            if out["fps1_vidseek_video_s_per_s_wall"]
            else None
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["total_s"] = round(time.perf_counter() - t_all, 1)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:36s} {v}")


if __name__ == "__main__":
    main()
