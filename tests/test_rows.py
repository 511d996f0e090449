"""The job's rows (operators/rows.py): typed values survive the wire layouts (inputs, stage rows with both
payloads or records only, results), and a video row is the store's row."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vidseek.operators.rows import (
    RESULT_COLUMNS,
    EncodeFailure,
    FrameRows,
    VideoEnd,
    VideoResult,
    VideoRow,
    VideoSource,
    from_batch,
    results_from_batch,
    results_to_batch,
    source_items,
    sources_from_batch,
    to_batch,
)


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


def test_sources_cross_as_input_rows_and_come_back_typed():
    sources = [VideoSource("/lib/a.mp4", "ida", {"lang": "en", "year": 2020}), VideoSource("/lib/b.mp4", "idb")]
    items = source_items(sources)
    assert items[1] == {"path": "/lib/b.mp4", "video_id": "idb", "extra": ""}  # the decoder's input row layout
    batch = {k: np.array([it[k] for it in items], dtype=object) for k in items[0]}
    back = sources_from_batch(batch)
    assert back == sources and [s.metadata for s in back] == [{"lang": "en", "year": 2020}, {}]
    assert sources_from_batch({"path": np.array(["/x.mp4"])}) == [VideoSource("/x.mp4", "/x.mp4")]
    end = VideoEnd("ida", "/lib/a.mp4", "ok", extra=sources[0].extra)
    assert end.metadata == {"lang": "en", "year": 2020}  # passed through the stages as it came


def test_results_cross_as_one_column_each():
    results = [
        VideoResult("a", "/a.mp4", "ok", n_frames=3, duration=3.5, lost=1, decoder="pyav"),
        VideoResult("b", "/b.mp4", "failed", stage="decode", error="/b.mp4: bad"),
    ]
    batch = results_to_batch(results)
    assert tuple(batch) == RESULT_COLUMNS and batch["path"].dtype == object and batch["n_frames"].dtype.kind == "i"
    assert results_from_batch(batch) == results
    assert results_from_batch(results_to_batch([])) == []


def test_a_video_row_is_the_stores_row_without_the_vectors_it_lacks():
    row = VideoRow("a", "/a.mp4", "failed", "decode", "/a.mp4: bad", 0, 0.0, 0, "", "fps:1", {"k": 1})
    assert row.as_dict() == {
        "video_id": "a",
        "path": "/a.mp4",
        "status": "failed",
        "stage": "decode",
        "error": "/a.mp4: bad",
        "n_frames": 0,
        "duration": 0.0,
        "lost": 0,
        "decoder": "",
        "sampling": "fps:1",
        "metadata": {"k": 1},
    }  # the store writes zero vectors and no head for what is left out
    ok = dataclasses.replace(row, status="ok", stage="", error="", n_frames=2, mean_vec=np.ones(4, np.float32))
    assert set(ok.as_dict()) == set(row.as_dict()) | {"mean_vec"}
    assert ok.result() == VideoResult("a", "/a.mp4", "ok", n_frames=2)
    assert VideoRow.from_record(ok.as_dict()).as_dict().keys() == ok.as_dict().keys()
