"""The searcher's first stage behind one interface, implemented by the store and by the in-memory replica.

``search_videos(queries, k, field, where)`` and ``search_frames_grouped(queries, k, where)`` return, per
unit query [Q, D], the top-k videos as ``[{video_id, score, ...}]`` — by their ``field`` vector, and by their
best frame (max pooling). ``where`` says which videos may come back: always only ``ok`` ones, and with a
metadata filter the Milvus expression and the ids of the videos it lets through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vidseek.store.filters import all_of, in_list
from vidseek.store.video_store import VideoStore

MAX_FILTERED_IDS = 20_000  # above this, a metadata filter restricts the store's video-level stage only


@dataclass(frozen=True)
class Where:
    expr: str  # a safe Milvus expression over video rows (status ok, and the filter)
    ids: frozenset[str] | None = None  # the videos it allows; None: every ok video


class SearchBackend(Protocol):
    def search_videos(self, queries: np.ndarray, k: int, field: str, where: Where) -> list[list[dict]]: ...

    def search_frames_grouped(self, queries: np.ndarray, k: int, where: Where) -> list[list[dict]]: ...


def where_for(store: VideoStore, user_filter: str) -> Where:
    """The restriction for a search: ok videos, and those a metadata filter allows (ids from the store)."""
    expr = all_of('status == "ok"', user_filter)
    if not user_filter:
        return Where(expr)
    return Where(expr, frozenset(r["video_id"] for r in store.video_records(expr, fields=["video_id"])))


class StoreBackend:
    """Milvus (Lite or server): the filter runs in Milvus; frames are restricted by an id list."""

    def __init__(self, store: VideoStore):
        self.store = store

    def search_videos(self, queries: np.ndarray, k: int, field: str, where: Where) -> list[list[dict]]:
        return self.store.search_videos(queries, k, field=field, filter=where.expr, fields=["video_id"])

    def search_frames_grouped(self, queries: np.ndarray, k: int, where: Where) -> list[list[dict]]:
        if where.ids is not None and len(where.ids) > MAX_FILTERED_IDS:
            return [[] for _ in queries]  # too long an id list for a frame filter: the video stage decides
        frame_filter = in_list("video_id", sorted(where.ids)) if where.ids is not None else ""
        return self.store.search_frames_grouped(queries, k, filter=frame_filter)
