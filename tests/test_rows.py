"""The stage rows (operators/rows.py): typed values survive the one wire layout, both payloads, records only."""

from __future__ import annotations

import numpy as np
import pytest

from vidseek.operators.rows import EncodeFailure, FrameRows, VideoEnd, from_batch, to_batch


def _frames(n: int, payload: np.ndarray) -> FrameRows:
    return FrameRows.of_video(
        "v1", "/lib/v1.mp4", np.arange(n), np.arange(n) + 0.5, np.arange(n), np.arange(n) + 1.0, payload
    )


@pytest.mark.parametrize(
    "payload,column", [(np.ones((3, 8, 8, 3), np.uint8), "frame"), (np.ones((3, 16), np.float32), "embedding")]
)
def test_round_trip_keeps_frames_and_records_in_order(payload, column):
    end = VideoEnd("v1", "/lib/v1.mp4", "ok", n_frames=3, duration=3.0, lost=1, decoder="decord", extra='{"a": 1}')
    fail = EncodeFailure("v2", "/lib/v2.mp4", "encode failed (RuntimeError: out of memory)")
    batch = to_batch(_frames(3, payload), [end, fail], payload=column)
    assert list(batch["kind"]) == ["frame"] * 3 + ["end", "encode_failure"]
    assert batch[column].shape == (5, *payload.shape[1:]) and batch[column].dtype == payload.dtype
    frames, records = from_batch(batch)
    assert records == [end, fail]
    assert np.array_equal(frames.payload, payload) and list(frames.idx) == [0, 1, 2]
    assert np.allclose(frames.t, [0.5, 1.5, 2.5]) and frames.videos() == [("v1", "/lib/v1.mp4")]


def test_a_batch_of_records_only_keeps_the_payload_shape():
    batch = to_batch(FrameRows.empty((8, 8, 3), np.uint8), [VideoEnd("v", "v.mp4", "failed", error="v.mp4: bad")])
    assert batch["frame"].shape == (1, 8, 8, 3)
    frames, records = from_batch(batch)
    assert len(frames) == 0 and frames.payload.shape == (0, 8, 8, 3) and records[0].error == "v.mp4: bad"
    assert not records[0].ok


def test_not_a_stage_batch_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match="not a stage batch.*to_batch"):
        from_batch({"path": np.array(["a.mp4"])})
    with pytest.raises(ValueError, match="payload column"):
        to_batch(FrameRows.empty((4,), np.float32), payload="vectors")
