"""The frame mirror (retrieval/frame_mirror.py): byte for byte the store's frame tables, the same hits as a
search that fetches frames from Milvus, incremental and crash-safe syncs, and a rebuild when the store's
model, thinning or width changes. On the 2.3.5 server too, in tests/test_milvus_server.py."""

from __future__ import annotations

import numpy as np
import pytest
from test_search_paths import PARAMS, QUERIES, fill_random

from vidseek.operators.frame_table import FrameTable
from vidseek.retrieval.frame_mirror import COLUMNS, FrameMirror
from vidseek.retrieval.search import Searcher
from vidseek.store.thin import thin_store
from vidseek.store.video_store import VideoStore


def assert_mirror_is_the_store(store: VideoStore, mirror: FrameMirror) -> None:
    ok = sorted(r["video_id"] for r in store.video_records('status == "ok"', ["video_id"]))
    assert sorted(mirror._where) == ok
    stored, mirrored = store.frames_of(ok), mirror.read(ok)
    for vid in ok:
        for col in COLUMNS:
            a, b = getattr(stored[vid], col), getattr(mirrored[vid], col)
            assert a.dtype == b.dtype and np.array_equal(a, b), (vid, col)


def assert_same_hits(store: VideoStore, clip, mirror: FrameMirror) -> None:
    asked: list[str] = []
    fetch = store.frames_of

    def spy(ids):
        asked.extend(ids)
        return fetch(ids)

    plain = Searcher(store, clip=clip, warn=False, cache_vectors=0)
    mirrored = Searcher(store, clip=clip, warn=False, cache_vectors=0, frame_mirror=mirror)
    store.frames_of = spy
    try:
        for params in PARAMS:
            for a, b in zip(plain.search(QUERIES, params), mirrored.search(QUERIES, params)):
                assert [(h.video_id, h.moment, h.best_t) for h in a] == [(h.video_id, h.moment, h.best_t) for h in b]
                assert [h.scores for h in a] == [h.scores for h in b]  # the same float32 arrays: equal, not close
    finally:
        store.frames_of = fetch
    assert mirror.hits > 0
    mirrored_asked = set(asked) & set(mirror._where)
    # the plain searcher asks the store for everything; the mirrored one only for what the mirror lacks
    assert set(asked) - mirrored_asked <= {"v000"} and mirror.misses <= mirror.hits


@pytest.fixture
def store(tmp_path, tiny_clip):
    s = VideoStore(str(tmp_path / "m.db"))
    s.ensure_model(tiny_clip.stamp())
    fill_random(s)
    yield s
    s.close()


def test_a_synced_mirror_is_the_store_and_searches_the_same(store, tmp_path, tiny_clip):
    mirror = FrameMirror(tmp_path / "mirror", store, batch_videos=16)
    report = mirror.sync()
    assert report.rebuilt and report.added == 59 and report.removed == 0  # 60 videos, v000 failed
    assert report.rows == sum(len(t) for t in store.frames_of(sorted(mirror._where)).values())
    assert len(list((tmp_path / "mirror").glob("seg-*"))) == 4  # 59 videos in batches of 16
    assert_mirror_is_the_store(store, mirror)
    assert_same_hits(store, tiny_clip, mirror)


def test_sync_adds_and_forgets_and_survives_a_restart(store, tmp_path):
    mirror = FrameMirror(tmp_path / "mirror", store, batch_videos=100)
    mirror.sync()
    vecs = np.random.default_rng(1).standard_normal((3, store.dim)).astype(np.float32)
    store.insert_frames("new", FrameTable.of(np.arange(3), [0.5, 1.5, 2.5], [0, 1, 2], [1, 2, 3], vecs))
    store.upsert_videos([{"video_id": "new", "path": "/v/new.mp4", "n_frames": 3, "mean_vec": vecs.mean(0)}])
    store.delete_videos(["v001", "v002"])
    report = mirror.sync()
    assert (report.added, report.removed, report.rebuilt) == (1, 2, False)
    assert "new" in mirror._where and "v001" not in mirror._where
    mirror.close()
    reopened = FrameMirror(tmp_path / "mirror", store)  # the index and segments on disk, no sync
    assert len(reopened) == 58
    assert_mirror_is_the_store(store, reopened)
    assert reopened.sync().added == 0


def test_a_forgotten_video_is_read_from_the_store(store, tmp_path):
    mirror = FrameMirror(tmp_path / "mirror", store)
    mirror.sync()
    mirror.mark_changed(["v005"])
    assert "v005" not in mirror.read(["v005", "v006"]) and "v006" in mirror.read(["v006"])
    got = mirror.get(["v005", "v006"])
    assert np.array_equal(got["v005"].vectors, store.frames_of(["v005"])["v005"].vectors)
    assert (mirror.hits, mirror.misses) == (1, 1)
    assert mirror.sync().added == 1  # the next sync takes it back


def test_leftovers_of_a_stopped_sync_are_removed(store, tmp_path):
    mirror = FrameMirror(tmp_path / "mirror", store)
    mirror.sync()
    (tmp_path / "mirror" / ".seg-000007.tmp").mkdir()  # stopped while writing a segment
    (tmp_path / "mirror" / "seg-000008").mkdir()  # stopped after the rename, before the index held it
    mirror.sync()
    names = sorted(p.name for p in (tmp_path / "mirror").iterdir())
    assert ".seg-000007.tmp" not in names and "seg-000008" not in names and "seg-000001" in names


def test_a_store_thinned_elsewhere_is_mirrored_again(store, tmp_path, tiny_clip):
    mirror = FrameMirror(tmp_path / "mirror", store)
    mirror.sync()
    before = sum(n for _, _, n in mirror._where.values())
    thin_store(VideoStore(store.uri), threshold=0.2)  # another process's store object, as `vidseek thin`
    report = mirror.sync()
    assert report.rebuilt and report.rows < before
    assert_mirror_is_the_store(store, mirror)
    assert_same_hits(store, tiny_clip, mirror)


def test_frame_mirror_and_in_memory_are_exclusive(store, tmp_path, tiny_clip):
    with pytest.raises(ValueError, match="choose one"):
        Searcher(store, clip=tiny_clip, warn=False, in_memory=True, frame_mirror=FrameMirror(tmp_path / "m", store))


def test_the_testbed_paths_comparison_counts_agreement(store, tmp_path):
    from vidseek.apps.testbed.search_paths_eval import compare_paths

    got = compare_paths(store, QUERIES, tmp_path / "mirror")
    assert set(got) == {"query-weighted:0.1+rerank (default)", "max", "mean", "query-weighted:0.01"}
    for r in got.values():
        assert r["queries"] == len(QUERIES) == r["same_order"] == r["same_moments"] == r["mirror_identical"]
        assert r["max_score_diff"] <= 1e-5
