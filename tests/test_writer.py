"""The store writer on Milvus Lite, fed stage batches in the orders a parallel job can produce."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from vidseek.operators.rows import FrameRows, VideoEnd, to_batch
from vidseek.pipeline.writer import StoreWriter
from vidseek.store.video_store import VideoStore

ROOT = Path(__file__).resolve().parents[1]


def _frames(vid: str, n: int, dim: int = 64) -> FrameRows:
    vec = np.random.default_rng(len(vid)).normal(size=(n, dim)).astype(np.float32)
    return FrameRows.of_video(
        vid, f"/{vid}.mp4", np.arange(n), np.arange(n) + 0.5, np.arange(n), np.arange(n) + 1.0, vec
    )


def _embedded(frames: FrameRows, records=()) -> dict:
    return to_batch(frames, list(records), payload="embedding")


def test_late_rows_of_a_finished_video_are_dropped(tmp_path, tiny_clip):
    """A failed video's frames still in flight through another encoder actor, and a repeated end record,
    arrive after the video was finished: nothing is written for them and the job still completes."""
    uri = str(tmp_path / "w.db")
    writer = StoreWriter(uri, tiny_clip.stamp(), "fps:1", expected=2)
    empty = FrameRows.empty((64,), np.float32)
    out = writer(_embedded(empty, [VideoEnd("bad", "/bad.mp4", "failed", error="/bad.mp4: timeout after 60 s")]))
    assert list(out["status"]) == ["failed"]
    out = writer(_embedded(_frames("bad", 3), [VideoEnd("bad", "/bad.mp4", "failed", error="again")]))
    assert len(out["video_id"]) == 0 and "bad" not in writer.pending  # late frames and the repeat: dropped
    out = writer(_embedded(_frames("ok", 4), [VideoEnd("ok", "/ok.mp4", "ok", n_frames=4, duration=4.0)]))
    assert list(out["status"]) == ["ok"] and writer.finished == 2 and not writer.pending
    with VideoStore(uri) as store:  # the writer released Milvus Lite's lock once all videos were written
        assert store.count_frames("bad") == 0 and store.count_frames("ok") == 4
        recs = {r["video_id"]: r for r in store.video_records(fields=["video_id", "status", "error"])}
    assert recs["bad"]["status"] == "failed" and "timeout" in recs["bad"]["error"] and recs["ok"]["status"] == "ok"


def test_a_store_error_raised_in_a_ray_stage_is_found_for_the_message():
    """What reaches the driver when the writer actor gives up on the server: Ray's wrapper (pickled across
    processes) around the store's error. The job's message is the store's one line, not Ray's traceback."""
    import ray.cloudpickle as pickle
    from ray.exceptions import RayTaskError

    from vidseek.pipeline.index_job import _store_error_in
    from vidseek.store.video_store import StoreUnavailableError

    try:
        raise StoreUnavailableError("the Milvus server at http://h:19530 has not answered for 60 s")
    except StoreUnavailableError as cause:
        wrapped = RayTaskError("WriteStage", "Traceback (most recent call last): …", cause)
    error = pickle.loads(pickle.dumps(wrapped.as_instanceof_cause()))
    found = _store_error_in(error)
    assert isinstance(found, StoreUnavailableError) and str(found).startswith("the Milvus server at http://h:19530")
    assert _store_error_in(RuntimeError("a bug")) is None


def test_the_writers_mean_pooling_is_the_aggregate_modules():
    import torch

    from vidseek.operators.aggregate import mean_pool
    from vidseek.operators.video_vectors import mean_pool_np

    frames = np.random.default_rng(0).normal(size=(7, 32)).astype(np.float32)
    want = mean_pool(torch.from_numpy(frames)[None])[0].numpy()
    np.testing.assert_allclose(mean_pool_np(frames), want, rtol=1e-5, atol=1e-6)


def test_the_writer_stage_imports_no_torch():
    """torch costs the writer actor ~3 s of CPU at start-up; it needs none without a learned head."""
    code = "import sys, vidseek.pipeline.stages.write; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_a_video_that_fails_after_its_frames_were_flushed_leaves_only_its_error_row(tmp_path, tiny_clip):
    """A read that breaks mid-object (a URL source's connection reset) after frames went to the store: the
    failed end record deletes them; nothing half-written stays."""
    uri = str(tmp_path / "w.db")
    writer = StoreWriter(uri, tiny_clip.stamp(), "fps:1", flush_rows=2, expected=1)
    writer(_embedded(_frames("cut", 3)))  # 3 rows ≥ flush_rows: written before the video ends
    assert writer.store.count_frames("cut") == 3  # the precondition: frames really were flushed
    end = VideoEnd("cut", "s3://b/cut.mp4", "failed", error="s3://b/cut.mp4: reading the object failed (reset)")
    out = writer(_embedded(FrameRows.empty((64,), np.float32), [end]))
    assert list(out["status"]) == ["failed"]
    with VideoStore(uri) as store:
        assert store.count_frames("cut") == 0
        (row,) = store.video_records(fields=["video_id", "status", "error"])
    assert row["status"] == "failed" and "reading the object failed" in row["error"]
