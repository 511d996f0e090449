"""The search path as it was before columnar reads and parallel store calls: the reference the fast path is
checked against (tests/test_search_paths.py, over Milvus Lite and a server) and timed beside
(bench/search_latency.py). Same scores by construction; only how the store is read differs:

- the first stage's two searches, then the candidates' video rows, then their frames, one after another;
- frames read through pymilvus' public row path (one dict and one vector slice per row), grouped per row.
"""

from __future__ import annotations

from vidseek.operators.frame_table import FrameTable
from vidseek.retrieval.backends import where_for
from vidseek.retrieval.search import Searcher, SearchParams, union_candidates
from vidseek.store.filters import in_list
from vidseek.store.video_store import QUERY_LIMIT, VideoStore, group_frame_rows


def frames_by_rows(store: VideoStore, video_ids: list[str]) -> dict[str, FrameTable]:
    """``VideoStore.frames_of`` through the public row path."""
    rows: list[dict] = []
    fields = store.frame_read_fields()
    for i in range(0, len(video_ids), 256):
        rows.extend(
            store.client.query(
                store.frames,
                filter=in_list("video_id", video_ids[i : i + 256]),
                output_fields=fields,
                limit=QUERY_LIMIT,
                strict_float32=True,
                consistency_level=store.search_consistency,
            )
        )
    return group_frame_rows(rows)


class RowPathSearcher(Searcher):
    """A Searcher whose store reads are sequential and row by row (module docstring). Frame cache off."""

    def __init__(self, store: VideoStore | str, **kwargs):
        super().__init__(store, cache_vectors=0, **kwargs)
        self.frames.fetch = lambda ids: frames_by_rows(self.store, ids)

    def _first_stage(self, qvec, params: SearchParams, depth: int) -> list[list[str]]:
        vec_field = "learned_vec" if params.aggregation == "learned" else "mean_vec"
        where = where_for(self.store, params.filter)
        by_video = self.backend.search_videos(qvec, depth, vec_field, where)
        by_frame = self.backend.search_frames_grouped(qvec, depth, where)
        return union_candidates(by_video, by_frame)

    def _videos_and_frames(self, union: list[str], fields: list[str]):
        videos = self.store.get_videos(union, fields)
        ok = [v for v in union if videos.get(v, {}).get("status") == "ok"]
        return videos, self.frames.get(ok)
