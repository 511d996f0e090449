"""The fast search path (columnar reads, parallel store calls) against the row path it replaced
(retrieval/row_path.py): same order, scores within 1e-5, same moments, for every aggregation, with and
without reranking, on Milvus Lite here and on the 2.3.5 server in tests/test_milvus_server.py."""

from __future__ import annotations

import numpy as np
import pytest

from vidseek.operators.aggregate import mean_pool
from vidseek.operators.frame_table import FrameTable
from vidseek.retrieval.row_path import RowPathSearcher
from vidseek.retrieval.search import Searcher, SearchParams
from vidseek.store.video_store import VideoStore

PARAMS = [
    SearchParams(aggregation="query-weighted", rerank=True, depth=20, k=15),
    SearchParams(aggregation="query-weighted", tau=0.5, rerank=False, k=30),
    SearchParams(aggregation="mean", rerank=False, k=30),
    SearchParams(aggregation="max", rerank=True, depth=30, k=10),
]
QUERIES = ["a dog on a beach", "a red car at night", "people dancing", "an empty street"]


def fill_random(store: VideoStore, n_videos: int = 60, seed: int = 4) -> None:
    import torch

    rng = np.random.default_rng(seed)
    rows = []
    for v in range(n_videos):
        n = int(rng.integers(1, 30))
        vecs = (rng.standard_normal(store.dim) + 0.7 * rng.standard_normal((n, store.dim))).astype(np.float32)
        t = np.arange(n, dtype=np.float32)
        store.insert_frames(f"v{v:03d}", FrameTable.of(np.arange(n), t + 0.5, t, t + 1, vecs * rng.uniform(1, 3)))
        mean = mean_pool(torch.from_numpy(vecs)[None])[0].numpy()
        rows.append({"video_id": f"v{v:03d}", "path": f"/v/{v}.mp4", "n_frames": n, "mean_vec": mean})
    store.upsert_videos(rows)
    # a video with frames and no ok row (failed after its frames were written): searched by neither path
    store.upsert_videos([{"video_id": "v000", "path": "/v/0.mp4", "status": "failed", "n_frames": 0}])


def assert_paths_agree(store: VideoStore, clip) -> None:
    fast, ref = Searcher(store, clip=clip, warn=False), RowPathSearcher(store, clip=clip, warn=False)
    for params in PARAMS:
        for a, b in zip(fast.search(QUERIES, params), ref.search(QUERIES, params)):
            assert [h.video_id for h in a] == [h.video_id for h in b], params
            assert "v000" not in [h.video_id for h in a]
            assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5, nan_ok=True)
            assert [h.moment for h in a] == [h.moment for h in b] and [h.best_t for h in a] == [h.best_t for h in b]
    assert len(fast.frames) > 0 and "v000" not in fast.frames._entries  # the cache admitted only ok videos


def test_fast_and_row_paths_agree_on_lite(tmp_path, tiny_clip):
    store = VideoStore(str(tmp_path / "p.db"))
    store.ensure_model(tiny_clip.stamp())
    fill_random(store)
    assert_paths_agree(store, tiny_clip)
    store.close()
