"""The query-embedding cache (retrieval/query_cache.py): a repeated query does not run the text tower again."""

from __future__ import annotations

import numpy as np
import pytest

from vidseek.operators.frame_table import FrameTable
from vidseek.retrieval import search as search_module
from vidseek.retrieval.query_cache import QueryCache, stamp_key
from vidseek.retrieval.search import Searcher
from vidseek.store.video_store import VideoStore


class CountingEncoder:
    def __init__(self, dim: int = 4):
        self.calls: list[list[str]] = []
        self.dim = dim

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([np.full(self.dim, float(len(t))) for t in texts])


def test_only_texts_not_held_are_encoded_in_one_batch_per_call():
    cache, enc = QueryCache(8), CountingEncoder()
    a = cache.vectors("m", ["a dog", "cat"], enc)
    b = cache.vectors("m", ["cat", "a dog", "owl", "owl"], enc)
    assert enc.calls == [["a dog", "cat"], ["owl"]]
    assert np.array_equal(b[:2], a[::-1]) and b.shape == (4, 4) and np.array_equal(b[2], b[3])
    assert (cache.hits, cache.misses) == (3, 3)


def test_entries_are_per_model_and_the_oldest_go_first():
    cache, enc = QueryCache(2), CountingEncoder()
    cache.vectors("m1", ["x"], enc)
    cache.vectors("m2", ["x"], enc)  # another model: another space, encoded again
    assert len(enc.calls) == 2
    cache.vectors("m1", ["x"], enc)  # held; now the most recent
    cache.vectors("m1", ["y"], enc)  # evicts ("m2", "x")
    assert len(cache) == 2
    cache.vectors("m2", ["x"], enc)
    assert enc.calls[-1] == ["x"] and len(enc.calls) == 4
    assert stamp_key({"model": "a", "x": 1}) == stamp_key({"x": 1, "model": "a"}) != stamp_key({"model": "b"})
    with pytest.raises(ValueError):
        QueryCache(-1)


def test_a_searcher_runs_the_text_tower_once_per_distinct_query(tmp_path, tiny_clip, monkeypatch):
    store = VideoStore(str(tmp_path / "q.db"))
    store.ensure_model(tiny_clip.stamp())
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((3, store.dim)).astype(np.float32)
    t = np.arange(3, dtype=np.float32)
    store.insert_frames("v", FrameTable.of(np.arange(3), t + 0.5, t, t + 1, vecs))
    store.upsert_videos([{"video_id": "v", "path": "/v.mp4", "n_frames": 3, "mean_vec": vecs.mean(0)}])
    real, seen = search_module.encode_texts, []
    monkeypatch.setattr(
        search_module, "encode_texts", lambda clip, texts: seen.append(list(texts)) or real(clip, texts)
    )
    searcher = Searcher(store, clip=tiny_clip, warn=False)
    first = searcher.search("a red car")
    again = searcher.search(["a red car", "a dog"])
    assert seen == [["a red car"], ["a dog"]]  # the repeated text came from the cache
    assert [(h.video_id, h.score, h.moment) for h in first] == [(h.video_id, h.score, h.moment) for h in again[0]]
    store.close()
