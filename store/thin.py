"""Thinning a store's frame table in place (``vidseek thin``), and which threshold an index job merges with.

Per video: read its frame rows, merge runs of near-duplicates (``vidseek.operators.thinning``), upsert each
run's first row as the merged row, then delete the other members. Nothing is decoded or encoded; the video
rows (meanP, learned vectors) were pooled from every frame at index time and stay as they are.

Stopped at any point, the store still reads right: a member left behind lies inside its merged row's span,
and readers skip it (``frame_groups.group_frame_rows``); running ``thin`` again deletes it. The store records
its threshold once every video is thinned, and index jobs into it merge new videos at the same threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from vidseek.operators.frame_table import FrameTable
from vidseek.operators.thinning import check_threshold, merge_similar
from vidseek.store.video_store import StoreError, VideoStore, frame_pk

SAME = 1e-9


@dataclass
class ThinReport:
    videos: int = 0
    rows_before: int = 0
    rows_after: int = 0
    threshold: float = 1.0

    @property
    def ratio(self) -> float:
        """Rows before per row after (≥ 1)."""
        return self.rows_before / max(self.rows_after, 1)

    def as_dict(self) -> dict:
        return {**self.__dict__, "ratio": round(self.ratio, 3)}


def thin_store(
    store: VideoStore, threshold: float, batch: int = 64, progress: Callable[[int], None] | None = None
) -> ThinReport:
    """Merge consecutive near-duplicate frame rows of every ``ok`` video at cosine ``threshold``."""
    threshold = check_threshold(threshold)
    store.require_ready()
    store.require_merged()
    recorded = store.thinning()
    if recorded is not None and threshold > recorded["threshold"] + SAME:
        raise StoreError(
            f"store {store.uri} is thinned at {recorded['threshold']:g}: a finer threshold ({threshold:g}) needs "
            "the frames that were merged away. Thin with a threshold ≤ that, or re-index into a new --store"
        )
    report = ThinReport(threshold=threshold, rows_before=store.count_frames())
    ids = [r["video_id"] for r in store.video_records('status == "ok"', ["video_id"])]
    for i in range(0, len(ids), batch):
        chunk = ids[i : i + batch]
        frames = store.frames_of(chunk)  # members a stopped run left are already left out here
        keys = store.frame_keys(chunk)
        for vid in chunk:
            if vid in frames:
                _thin_video(store, vid, frames[vid], keys.get(vid, []), threshold)
        report.videos += len(chunk)
        if progress is not None:
            progress(len(chunk))
    store.record_thinning(threshold)  # last: the record says every video is thinned at this threshold
    report.rows_after = store.count_frames()
    return report


def _thin_video(store: VideoStore, vid: str, rows: FrameTable, keys: list[str], threshold: float) -> None:
    thin = merge_similar(rows, threshold)
    before = dict(zip(np.asarray(rows.idx).tolist(), np.asarray(rows.merged).tolist()))
    changed = np.array([before.get(int(i)) != int(m) for i, m in zip(thin.idx, thin.merged)], dtype=bool)
    sel = np.flatnonzero(changed)
    # merged rows first: until the members are deleted, readers skip them as inside a merged row's span
    store.upsert_frames(vid, thin.take(sel))
    keep = {frame_pk(vid, i) for i in thin.idx}
    store.delete_frame_rows([k for k in keys if k not in keep])


def merge_threshold_for_job(store: VideoStore, requested: float | None) -> float | None:
    """The threshold an index job merges new videos with: the store's own, or ``requested`` on a new store.

    A store stays uniformly thinned: a job may not add unthinned videos to a thinned store (it inherits the
    threshold) nor thinned ones to a store of unthinned videos (``vidseek thin`` it first)."""
    recorded = store.thinning()
    if requested is None:
        return None if recorded is None else float(recorded["threshold"])
    requested = check_threshold(requested)
    store.require_merged()
    if recorded is not None:
        if abs(requested - recorded["threshold"]) <= SAME:
            return requested
        raise StoreError(
            f"store {store.uri} is thinned at {recorded['threshold']:g}, not {requested:g}: index without "
            f"--merge-similar (new videos get the store's threshold), or `vidseek thin --store {store.uri} "
            f"--threshold {requested:g}` first when {requested:g} is lower"
        )
    if store.count(filter='status == "ok"'):
        raise StoreError(
            f"store {store.uri} holds unthinned videos: thin them first (`vidseek thin --store {store.uri} "
            f"--threshold {requested:g}`, no re-decoding), then index with --merge-similar {requested:g}"
        )
    store.record_thinning(requested)
    return requested
