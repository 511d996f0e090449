"""The store on a Milvus without grouping or a second vector field (2.3), run on Lite with 2.3's caps.

Grouped frame search falls back to over-fetching frames and grouping them here; its recall against exact
max pooling (numpy over every frame) is measured and printed beside Lite's own group_by.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from vidseek.operators.frame_table import FrameTable
from vidseek.store.search_strategies import FANOUT_STEP, GROUP_FANOUT
from vidseek.store.server_caps import ServerCaps
from vidseek.store.video_store import StoreError, VideoStore

M23 = ServerCaps.from_version("v2.3.5-lite")
D, VIDEOS, FRAMES, K = 32, 120, 24, 10


@pytest.mark.parametrize(
    "version, grouped",
    [("v2.3.5-lite", False), ("v2.3.9", False), ("v2.4.0", True), ("2.6.1", True), ("v3.0.0-beta", True)],
)
def test_caps_from_the_version(version, grouped):
    caps = ServerCaps.from_version(version)
    assert (caps.group_by, caps.multi_vector) == (grouped, grouped)


@pytest.mark.parametrize(
    "version, grouped_indexes",
    [
        ("v2.3.5", set()),
        ("v2.4.9", {"HNSW", "IVF_FLAT"}),
        ("v2.5.4", {"HNSW", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "DISKANN"}),
        ("lite", {"HNSW", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "DISKANN"}),
    ],
)
def test_grouping_is_a_capability_of_the_version_and_the_frame_index(version, grouped_indexes):
    from vidseek.store.frame_index import FRAME_INDEXES

    caps = ServerCaps.lite() if version == "lite" else ServerCaps.from_version(version)
    assert {ix for ix in FRAME_INDEXES if caps.groups(ix)} == grouped_indexes


@pytest.mark.parametrize("index", ["HNSW", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "DISKANN"])
@pytest.mark.parametrize("caps", [None, M23], ids=["lite", "2.3"])
def test_every_frame_index_takes_its_grouping_path_and_groups(tmp_path, index, caps):
    """Each --frame-index the store accepts, on Lite (groups in Milvus) and with 2.3's caps (in the client):
    the path taken is the one the caps say, and it returns k distinct videos, the planted one first."""
    rng = np.random.default_rng(1)
    store = VideoStore(str(tmp_path / "g.db"), caps=caps, frame_index=index)
    store.ensure_model({"model": "t", "embed_dim": D, "weights": "w"})
    target = rng.normal(size=D).astype(np.float32)
    for v in range(30):
        f = rng.normal(size=(8, D)).astype(np.float32)
        if v == 17:
            f[3] = target
        n = np.arange(8)
        store.insert_frames(f"v{v:02d}", FrameTable.of(n, n + 0.5, n * 1.0, n + 1.0, f))
    assert store.frame_grouping == ("server" if caps is None else "client")
    (hits,) = store.search_frames_grouped((target / np.linalg.norm(target))[None], K)
    assert len(hits) == K == len({h["video_id"] for h in hits}) and hits[0]["video_id"] == "v17"
    store.close()


def test_an_unknown_version_assumes_the_oldest_features(caplog):
    with caplog.at_level(logging.WARNING):
        caps = ServerCaps.from_version("weird")
    assert not caps.group_by and not caps.multi_vector and "unknown Milvus version 'weird'" in caplog.text


def _world(rng):
    """Videos whose frames are near one another (like real footage), unit vectors [V, T, D]."""
    base = rng.normal(size=(VIDEOS, 1, D))
    frames = base + 0.35 * rng.normal(size=(VIDEOS, FRAMES, D))
    return frames / np.linalg.norm(frames, axis=-1, keepdims=True)


def _fill(store: VideoStore, frames: np.ndarray) -> list[str]:
    ids = [f"v{i:04d}" for i in range(len(frames))]
    for vid, f in zip(ids, frames):
        n = np.arange(len(f))
        store.insert_frames(vid, FrameTable.of(n, n.astype(float), n.astype(float), n + 1.0, f))
    return ids


def _recall(got: list[list[dict]], exact: np.ndarray, ids: list[str]) -> float:
    want = [{ids[j] for j in row} for row in exact]
    return float(np.mean([len({h["video_id"] for h in g} & w) / K for g, w in zip(got, want)]))


def test_grouping_fallback_recall_against_exact_max_pooling(tmp_path, capsys):
    rng = np.random.default_rng(0)
    frames = _world(rng)
    queries = rng.normal(size=(40, D))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = np.argsort(-(np.einsum("vtd,qd->qvt", frames, queries).max(-1)), axis=1)[:, :K]  # [Q, K]
    stamp = {"model": "t", "embed_dim": D, "weights": "w"}
    recalls = {}
    for name, caps in (("lite group_by", None), ("2.3 fallback", M23)):
        with VideoStore(str(tmp_path / f"{name.split()[0]}.db"), caps=caps) as store:
            store.ensure_model(stamp)
            ids = _fill(store, frames)
            got = store.search_frames_grouped(queries, K)
            assert all(len({h["video_id"] for h in g}) == len(g) for g in got)  # one hit per video
            if caps is M23:  # the fallback fetches on until every query has k videos; Lite's grouping
                assert all(len(g) == K for g in got)  # sometimes returns k - 1 (seen: 9 of 10)
            assert all(g[i]["score"] >= g[i + 1]["score"] for g in got for i in range(len(g) - 1))
            recalls[name] = _recall(got, exact, ids)
    with capsys.disabled():
        print(
            f"\ngrouped frame search recall@{K} vs exact max pooling ({VIDEOS} videos × {FRAMES} frames): "
            + ", ".join(f"{n} {r:.3f}" for n, r in recalls.items())
        )
    assert recalls["2.3 fallback"] >= 0.95 and recalls["lite group_by"] >= 0.95


def test_a_store_without_a_second_vector_field_refuses_learned_vectors_clearly(tmp_path):
    with VideoStore(str(tmp_path / "m23.db"), caps=M23) as store:
        store.ensure_model({"model": "t", "embed_dim": 4, "weights": "w"})
        assert not store.has_learned
        store.upsert_videos([{"video_id": "a", "path": "/a.mp4", "mean_vec": np.ones(4, np.float32)}])
        row = store.get_videos(["a"], ["video_id", "learned_vec"])["a"]
        assert not np.any(row["learned_vec"])  # read as zeros: no learned head
        with pytest.raises(StoreError, match="one vector field per collection .* Milvus 2.4 or newer"):
            store.upsert_videos([{"video_id": "a", "path": "/a.mp4", "learned_vec": np.ones(4, np.float32)}])
        with pytest.raises(StoreError, match="holds no learned vectors"):
            store.search_videos(np.ones((1, 4), np.float32), 1, field="learned_vec")
    with VideoStore(str(tmp_path / "m23.db")) as again:  # reopened with Lite's caps: the layout is read back
        assert not again.has_learned


def test_a_server_that_does_not_answer_is_one_clear_line(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    with pytest.raises(StoreError) as e:
        VideoStore(uri)
    msg = str(e.value)
    assert msg.startswith(f"cannot reach the Milvus server at {uri} (") and "is it running" in msg
    assert "\n" not in msg


def test_the_fallback_learns_how_deep_the_kth_video_lies_and_starts_there(tmp_path):
    """60 frames per video in tight clumps: 10 frames per wanted video find about 2 videos, so the first
    search fetches again; later searches start at the depth it learned and fetch once, with the same answer
    rule (the first k distinct videos of the frame ranking) checked against exact max pooling."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=(VIDEOS, 1, D))
    frames = base + 0.15 * rng.normal(size=(VIDEOS, 60, D))
    frames /= np.linalg.norm(frames, axis=-1, keepdims=True)
    queries = rng.normal(size=(20, D))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = np.argsort(-(np.einsum("vtd,qd->qvt", frames, queries).max(-1)), axis=1)[:, :K]  # [Q, K]
    with VideoStore(str(tmp_path / "s.db"), caps=M23) as store:
        store.ensure_model({"model": "t", "embed_dim": D, "weights": "w"})
        ids = _fill(store, frames)
        search = store._search
        limits: list[list[int]] = []
        fetch = search._frame_hits

        def counted(data, limit, *a, **kw):
            limits[-1].append(limit)
            return fetch(data, limit, *a, **kw)

        search._frame_hits = counted
        got, fanouts = [], []
        for q in queries:
            limits.append([])
            got += store.search_frames_grouped(q[None], K)
            fanouts.append(search.fanout)
        again = len(limits)
        for q in queries:  # the same queries again: each starts where the last of the first pass did
            limits.append([])
            store.search_frames_grouped(q[None], K)
    assert len(limits[0]) >= 2 and limits[0][0] == K * GROUP_FANOUT  # the first search was short at 10 per video
    assert search.fanout > GROUP_FANOUT
    on_grid = [
        abs(np.log(f / GROUP_FANOUT) / np.log(FANOUT_STEP) - round(np.log(f / GROUP_FANOUT) / np.log(FANOUT_STEP)))
        < 1e-9
        for f in fanouts
    ]
    assert fanouts == sorted(fanouts) and all(on_grid), fanouts
    assert {x[0] for x in limits[again:]} == {int(K * fanouts[-1])}, limits[again:]
    limits = limits[:again]
    later = [len(x) for x in limits[1:]]
    assert sum(n == 1 for n in later) >= 0.8 * len(later), limits  # started deep enough: one fetch
    assert all(len(g) == K for g in got)
    assert _recall(got, exact, ids) >= 0.95
