"""The GPU path as far as a CPU allows (docs/gpu.md): device checks, the frame transfer, out-of-memory splitting,
and the Ray resource plan with GPUs — pure plans, and a local Ray that declares two (fake) GPUs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vidseek.operators.device import DeviceError, frames_to_device, pick_device, pick_dtype
from vidseek.operators.encode import ImageEncoder, encode_images
from vidseek.operators.rows import EncodeFailure, FrameRows, from_batch, to_batch
from vidseek.pipeline.resources import plan_resources

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")


@no_cuda
def test_cuda_without_cuda_is_a_clear_error():
    for device in ("cuda", "cuda:0"):
        with pytest.raises(DeviceError, match=r"--device cuda.*(without CUDA|no CUDA device).*use --device cpu"):
            pick_device(device)
    assert pick_device("auto") == torch.device("cpu")


@no_cuda
def test_an_index_job_on_cuda_without_cuda_fails_before_ray_starts(tmp_path):
    from vidseek.pipeline.index_job import IndexConfig, run_index

    (tmp_path / "lib").mkdir()
    with pytest.raises(DeviceError, match="--device cuda"):
        run_index(IndexConfig(source=str(tmp_path / "lib"), store=str(tmp_path / "s.db"), device="cuda"))
    import ray

    assert not ray.is_initialized()


def test_unknown_devices_and_precisions_are_refused():
    with pytest.raises(DeviceError, match="use auto, cpu, cuda"):
        pick_device("gpu0")
    with pytest.raises(DeviceError, match="unsupported device 'meta'"):
        pick_device("meta")
    with pytest.raises(ValueError, match="unknown precision 'int8'"):
        pick_dtype(torch.device("cpu"), "int8")
    assert pick_dtype(torch.device("cuda"), "auto") == torch.bfloat16  # CUDA's default
    assert pick_dtype(torch.device("cpu"), "auto") == torch.float32


def test_frames_to_device_copies_read_only_frames():
    frames = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    frames.setflags(write=False)  # as Ray hands them out
    t = frames_to_device(frames, torch.device("cpu"))
    assert t.dtype == torch.uint8 and t.shape == (3, 8, 8, 3) and np.array_equal(t.numpy(), frames)
    t[0, 0, 0, 0] ^= 1  # writable, and not the caller's memory
    assert t[0, 0, 0, 0].item() != frames[0, 0, 0, 0]


class _SmallMemory:
    """The model on a GPU with room for ``fits`` frames per batch: bigger batches raise CUDA's OOM error."""

    def __init__(self, model: torch.nn.Module, fits: int):
        self.model, self.fits, self.batches = model, fits, []

    def __getattr__(self, name: str):  # everything but encode_image is the real model's
        return getattr(self.model, name)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(x))
        if len(x) > self.fits:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {len(x)} frames")
        return self.model.encode_image(x)


def test_out_of_memory_splits_the_batch_and_keeps_the_smaller_size(tiny_clip):
    frames = np.random.default_rng(1).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    want = encode_images(tiny_clip, frames, 8)
    small = _SmallMemory(tiny_clip.model, fits=2)
    clip = dataclasses.replace(tiny_clip, model=small)
    assert np.allclose(encode_images(clip, frames, 8), want, atol=1e-5)
    assert small.batches == [8, 4, 2, 2, 2, 2]  # halved until it fits, then every batch at that size
    enc = ImageEncoder.__new__(ImageEncoder)  # the operator without loading a model: this clip, batch 8
    enc.clip, enc.batch_size = clip, 8
    small.batches.clear()
    enc(frames)
    enc(frames)
    assert enc.batch_size == 2 and small.batches == [8, 4, 2, 2, 2, 2, 2, 2, 2, 2]  # no retry storm later


def test_out_of_memory_at_one_frame_fails_the_videos_not_the_job(tiny_clip, monkeypatch):
    from vidseek.pipeline.stages.encode import EncodeStage

    stage = EncodeStage.__new__(EncodeStage)
    stage.encoder = ImageEncoder.__new__(ImageEncoder)
    stage.encoder.clip = dataclasses.replace(tiny_clip, model=_SmallMemory(tiny_clip.model, fits=0))
    stage.encoder.batch_size = 4
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    rows = FrameRows.of_video("v", "v.mp4", np.arange(3), np.zeros(3), np.zeros(3), np.ones(3), frames)
    encoded, records = from_batch(stage(to_batch(rows)))
    assert len(encoded) == 0 and stage.encoder.clip.model.batches == [3, 2, 1]  # halved to one frame, then gave up
    assert stage.encoder.batch_size == 1  # later batches start where this one ended, not at 4 again
    (failure,) = records
    assert isinstance(failure, EncodeFailure) and failure.video_id == "v"
    assert "OutOfMemoryError" in failure.error and "CUDA out of memory" in failure.error


# -- the resource plan --------------------------------------------------------------------------------
def test_gpu_plan_one_clip_actor_per_gpu_and_decoders_without_gpus():
    plan = plan_resources(16, 2, node_cpus=[16.0])
    assert (plan.encode.num_gpus, plan.encode.pool_size, plan.encode.min_pool_size) == (1, 2, 2)
    assert plan.encode.batch_size == 512 and plan.decode.num_gpus == 0 and plan.write.num_gpus == 0
    assert plan.decode.pool_size == 14  # every core left after the two CLIP actors decodes


def test_device_choice_shapes_the_plan():
    cpu_only = plan_resources(16, 2, device="cpu")  # CPU encoding on a GPU cluster reserves no GPU
    assert cpu_only.encode.num_gpus == 0 and cpu_only.encode.batch_size == 64
    assert plan_resources(16, 2, device="cuda").encode.num_gpus == 1
    with pytest.raises(ValueError, match="--device cuda: the Ray cluster has no GPUs"):
        plan_resources(16, 0, device="cuda")
    with pytest.raises(ValueError, match="each CLIP actor is given its own GPU"):
        plan_resources(16, 2, device="cuda:1")


def test_mixed_nodes_plan_counts_every_core():
    """A CPU-only head (4 cores) and a GPU worker (8 cores, 2 GPUs): two CLIP actors (Ray puts them where
    the GPUs are), decoders on every other core of both nodes."""
    plan = plan_resources(12, 2, node_cpus=[4.0, 8.0])
    assert plan.encode.pool_size == 2 and plan.encode.num_gpus == 1
    assert plan.decode.pool_size == 10 and plan.decode.num_cpus == 1.0


@pytest.mark.slow
@pytest.mark.ray
def test_local_ray_with_two_fake_gpus(tmp_path, monkeypatch):
    """Ray declares 2 GPUs that torch cannot see: the GPU plan runs, each CLIP actor is given its own GPU
    (CUDA_VISIBLE_DEVICES 0 and 1) and falls back to the CPU (device auto), decoders get no GPU."""
    from test_index_job import assert_exactly_once, make_clip

    from vidseek.pipeline.index_job import IndexConfig, run_index
    from vidseek.pipeline.placement import read_placement
    from vidseek.pipeline.specs import JobHooks

    if torch.cuda.is_available():
        pytest.skip("fake GPUs only mean something where torch sees none")
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(4):
        make_clip(lib / f"c{i}.mp4", 2)
    (tmp_path / "placement").mkdir()
    uri = str(tmp_path / "g.db")
    import ray.data

    # both CLIP actors up before streaming: else, on a busy machine, the first can finish these 4 clips while
    # the second is still loading, and the job ends it before it records where it ran (seen: ['0'] only)
    monkeypatch.setattr(ray.data.DataContext.get_current(), "wait_for_min_actors_s", 300)
    hooks = JobHooks(placement_dir=str(tmp_path / "placement"))
    summary = run_index(IndexConfig(source=str(lib), store=uri, progress=False, num_cpus=4, num_gpus=2), hooks=hooks)
    assert (summary.indexed, summary.failed) == (4, 0)
    assert_exactly_once(uri)
    records = read_placement(tmp_path / "placement")
    encoders = [r for r in records if r["stage"] == "encode"]
    assert sorted(r["cuda_visible_devices"] for r in encoders) == ["0", "1"], records  # one actor per GPU
    assert {r["device"] for r in encoders} == {"cpu"} and {r["batch_size"] for r in encoders} == {512}
    decoders = [r for r in records if r["stage"] == "decode"]
    assert decoders and all(r["cuda_visible_devices"] in (None, "") for r in decoders), decoders
