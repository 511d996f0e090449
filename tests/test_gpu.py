"""On a CUDA device only (marker ``gpu``; bench/gpu_check.sh runs these first): what the CPU tests cannot show.

Each test skips, saying why, where torch sees no CUDA — CI's smoke run of bench/gpu_check.sh shows them
collected and skipped, never passed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidseek.operators.device import frames_to_device, pick_device
from vidseek.operators.encode import encode_images, load_clip

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (bench/gpu_check.sh)"),
]


def test_frames_reach_the_device_through_pinned_memory():
    frames = np.random.default_rng(0).integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)
    t = frames_to_device(frames, pick_device("cuda"))
    assert t.is_cuda and t.dtype == torch.uint8 and np.array_equal(t.cpu().numpy(), frames)


def test_bf16_on_the_gpu_agrees_with_fp32_on_the_cpu():
    """ViT-B-32 (random weights: no registry here ships real ones), the default GPU precision."""
    frames = np.random.default_rng(1).integers(0, 256, (64, 224, 224, 3), dtype=np.uint8)
    gpu = load_clip("ViT-B-32", "none", device="cuda")
    assert gpu.dtype == torch.bfloat16
    cpu = load_clip("ViT-B-32", "none", device="cpu", precision="fp32")
    a, b = encode_images(gpu, frames, 32), encode_images(cpu, frames, 32)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() >= 0.99, cos.min()


def test_the_index_job_encodes_on_the_gpu(tmp_path):
    from test_index_job import assert_exactly_once, make_clip

    from vidseek.pipeline.index_job import IndexConfig, run_index
    from vidseek.pipeline.placement import read_placement
    from vidseek.pipeline.specs import JobHooks

    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(3):
        make_clip(lib / f"c{i}.mp4", 3)
    (tmp_path / "placement").mkdir()
    uri = str(tmp_path / "gpu.db")
    hooks = JobHooks(placement_dir=str(tmp_path / "placement"))
    summary = run_index(IndexConfig(source=str(lib), store=uri, device="cuda", progress=False), hooks=hooks)
    assert (summary.indexed, summary.failed) == (3, 0)
    assert_exactly_once(uri)
    encoders = [r for r in read_placement(tmp_path / "placement") if r["stage"] == "encode"]
    assert len(encoders) == torch.cuda.device_count() and {r["device"] for r in encoders} == {"cuda"}
