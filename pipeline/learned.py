"""Learned video vectors for videos already in a store, from their stored frame vectors.

Adding a head to an existing store needs no decoding and no encoding: the store keeps every sampled frame's
raw CLIP vector, so ``apply_head_to_store`` reads them back, runs the head (``LearnedHead.pool``, batched)
and rewrites the video rows with ``learned_vec`` and ``learned_head`` (the head's content id), keeping every
other field — the mean vectors stay as they are.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterable

from vidseek.operators.heads import LearnedHead
from vidseek.operators.rows import VideoRow
from vidseek.operators.thinning import expand_merged
from vidseek.store.video_store import VIDEO_FIELDS, VideoStore


def apply_head_to_store(
    store: VideoStore,
    agg: LearnedHead,
    video_ids: Iterable[str] | None = None,
    batch: int = 256,
    only_missing: bool = False,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write learned vectors for ``video_ids`` (default: every ``ok`` video); returns how many were written.

    ``agg`` must have been loaded with this store's stamp (``LearnedHead(path, store.model_stamp())``),
    which refuses a head trained on another embedding model. ``only_missing`` skips videos whose
    ``learned_head`` already equals ``agg.id`` (a re-run after an interruption).
    """
    store.require_ready()
    if video_ids is None:
        recs = store.video_records('status == "ok"', ["video_id", "learned_head"])
        ids = [r["video_id"] for r in recs if not (only_missing and r["learned_head"] == agg.id)]
    else:
        ids = list(video_ids)
    written = 0
    for i in range(0, len(ids), batch):
        chunk = ids[i : i + batch]
        frames = store.frames_of(chunk)
        recs = store.get_videos(chunk, VIDEO_FIELDS + ["mean_vec"])
        have = [v for v in chunk if v in frames and v in recs and recs[v].get("status") == "ok"]
        if only_missing:
            have = [v for v in have if recs[v].get("learned_head") != agg.id]
        if not have:
            continue
        # a head sees the frame sequence: merged rows (a thinned store) repeated as the frames they stand for
        vecs = agg.pool([expand_merged(frames[v].vectors, frames[v].merged) for v in have])
        rows = [
            replace(VideoRow.from_record(recs[v]), learned_vec=vec, learned_head=agg.id) for v, vec in zip(have, vecs)
        ]
        store.upsert_videos([r.as_dict() for r in rows])
        written += len(have)
        if progress is not None:
            progress(len(have))
    return written
