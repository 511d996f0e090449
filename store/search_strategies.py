"""ANN searches over a store, each by the strategy its server can run (store/server_caps.py).

Video vectors: one search. Best frame per video: one grouped search (``group_by_field``) where Milvus groups
for the store's frame index; elsewhere (Milvus 2.3, or an index type grouping does not work on) the top
``k × fanout`` frames, grouped here, fetching more while a query has fewer than k videos
(tests/test_server_caps.py measures its recall against exact grouping).

The fanout learns the store: a video's frames clump in the frame ranking (neighbouring frames look alike),
so a store with 90 frames per video needs more frames per wanted video than one with 30. Starting every
search at 10 per video and growing 4× when short cost two server searches, the second 4,000 frames deep,
at 90 frames per video (docs/scale.md, "Grouping on Milvus 2.3"). Each search records how deep its k-th video
was, and the next one starts there: on a grid of √2 steps (10, 14, 20, 28 … frames per wanted video) that
only rises. A start that followed every query up and down would change the next query's ANN depth (HNSW searches
``ef = max(ef, limit)``), so the same query twice could get different candidates depending on what ran in
between (a 3,333 × 90 store: 28 of 30 repeated queries differed); on the grid the start settles after a few
queries and a repeated query starts where it did. A short round grows to the depth its video count predicts.
The answer is the same rule as before: the first k distinct videos of the frame ranking.
"""

from __future__ import annotations

import math

import numpy as np

from vidseek.store.context import StoreContext
from vidseek.store.layout import QUERY_LIMIT

GROUP_FANOUT = 10  # frames fetched per wanted video where the server cannot group (Milvus 2.3), at least
FANOUT_MARGIN = 1.25  # fetch this much deeper than the depth the last search or this round predicts
# the learned start's grid: 10, 14.1, 20, 28.3 … frames per wanted video (a doubling grid overshot: 90 frames
# per video needed ~25 and got 40, a 4,000-frame search where two rounds fetched 3,100 frames in less time)
FANOUT_STEP = math.sqrt(2)
FRAME_HIT_FIELDS = ["video_id", "t", "t_start", "t_end"]


def best_per_video(hits: list[dict], k: int) -> list[dict]:
    """The first (best) hit of each video among score-ordered frame hits, top ``k`` videos."""
    seen: dict[str, dict] = {}
    for h in hits:
        if h["video_id"] not in seen:
            seen[h["video_id"]] = h
            if len(seen) == k:
                break
    return list(seen.values())


def kth_video_depth(hits: list[dict], k: int) -> int | None:
    """How many score-ordered frame hits it takes to see ``k`` distinct videos (None: fewer than k)."""
    seen: set[str] = set()
    for i, h in enumerate(hits):
        seen.add(h["video_id"])
        if len(seen) == k:
            return i + 1
    return None


class StoreSearch:
    def __init__(self, ctx: StoreContext):
        self.ctx = ctx
        self.fanout = float(GROUP_FANOUT)  # frames per wanted video the next client-grouped search starts at

    def search_videos(
        self, queries: np.ndarray, k: int, field: str = "mean_vec", filter: str = "", fields: list[str] | None = None
    ) -> list[list[dict]]:
        """ANN over video vectors; queries [Q, D] unit. Per query: [{video_id, score, ...fields}]."""
        if field == "learned_vec" and not self.ctx.has_learned:
            raise self.ctx.no_learned_error()
        # the id asked for as an output field: a hit's own key for it differs (Lite: "video_id", 2.3: "id")
        out_fields = list(dict.fromkeys([*(fields or ["path"]), "video_id"]))
        res = self.ctx.client.search(
            self.ctx.videos,
            data=[q.astype(np.float32) for q in queries],
            limit=k,
            anns_field=field,
            filter=filter,
            output_fields=out_fields,
            search_params={"metric_type": "IP", "params": {"ef": max(64, k)}},
            consistency_level=self.ctx.search_consistency,
        )
        return [[{**h["entity"], "score": float(h["distance"])} for h in hits] for hits in res]

    @property
    def frame_grouping(self) -> str:
        """Where a grouped frame search groups: "server" (``group_by_field``) or "client" (over-fetch and group
        here), by the server's version and this store's frame index type (store/server_caps.py)."""
        return "server" if self.ctx.caps.groups(self.ctx.frame_index.index_type) else "client"

    def search_frames_grouped(self, queries: np.ndarray, k: int, filter: str = "") -> list[list[dict]]:
        """Best frame per video (max pooling): [{video_id, score, t, t_start, t_end}], best first, by the
        strategy ``frame_grouping`` names (module docstring)."""
        data = [q.astype(np.float32) for q in queries]
        if self.frame_grouping == "server":
            return self._frame_hits(data, k, filter, group_by_field="video_id", candidates=k * 4)
        limit, found = min(int(k * self.fanout), QUERY_LIMIT), None
        while True:  # over-fetch frames while a query lacks k videos and more frames bring more videos
            hits = self._frame_hits(data, limit, filter)
            grouped = [best_per_video(h, k) for h in hits]
            counts = [len(g) for g in grouped]
            short = [c for c, h in zip(counts, hits) if c < k and len(h) == limit]
            if not short or limit >= QUERY_LIMIT or counts == found:  # a small store: no more videos exist
                self._learn_fanout(hits, k)
                return grouped
            # the depth this round's video count predicts (videos found grow about linearly with depth)
            predicted = limit * k / max(min(short), 1) * FANOUT_MARGIN
            limit, found = min(int(min(max(predicted, limit * 1.5), limit * 4)), QUERY_LIMIT), counts

    def _learn_fanout(self, hits: list[list[dict]], k: int) -> None:
        """The next search's start: the grid step that holds the deepest k-th video of these queries, with a
        margin, per wanted video; never lower than the start it has (module docstring: why a grid)."""
        depths = [d for d in (kth_video_depth(h, k) for h in hits) if d is not None]
        if not depths:
            return
        needed = max(depths) * FANOUT_MARGIN / k
        step = float(GROUP_FANOUT)
        while step < needed:
            step *= FANOUT_STEP
        self.fanout = max(self.fanout, min(step, QUERY_LIMIT / k))

    def _frame_hits(
        self, data: list[np.ndarray], limit: int, filter: str, candidates: int | None = None, **grouping
    ) -> list[list[dict]]:
        """One ANN search over frame vectors: per query [{score, video_id, t, t_start, t_end}]. ``candidates``:
        the index's search breadth (default: ``limit``); ``grouping``: ``group_by_field`` where Milvus groups."""
        res = self.ctx.client.search(
            self.ctx.frames,
            data=data,
            limit=limit,
            anns_field="vec",
            filter=filter,
            **grouping,
            output_fields=FRAME_HIT_FIELDS,
            search_params={"metric_type": "IP", "params": self.ctx.frame_index.search_params(candidates or limit)},
            consistency_level=self.ctx.search_consistency,
        )
        return [[{"score": float(h["distance"]), **h["entity"]} for h in q_hits] for q_hits in res]
