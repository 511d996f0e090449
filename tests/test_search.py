"""Search over a store with planted frame vectors: aggregation semantics, CLIPRerank, moments, filters."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from planted import BRIEF_IDX, QUERY, build_planted_store

from vidseek.operators.aggregate import mean_score, query_weighted_score
from vidseek.operators.frame_table import FrameTable
from vidseek.operators.model_stamp import RandomWeightsWarning
from vidseek.retrieval.search import Searcher, SearchParams
from vidseek.store.filters import parse_user_filter
from vidseek.store.video_store import StoreError, VideoStore


@pytest.fixture(
    scope="module",
    params=["store", "in-memory", pytest.param("server", marks=[pytest.mark.server, pytest.mark.slow])],
)
def planted(request, tmp_path_factory, tiny_clip):
    """Every test runs on each search path: Milvus Lite for each call, the in-memory replica, and a real
    Milvus 2.3.5 server (frames grouped by vidseek, no learned vectors: store/server_caps.py)."""
    meta = {"brief": {"genre": "sport", "year": 2020}, "diffuse": {"genre": "news", "year": 2019}}
    if request.param == "server":
        uri, prefix = request.getfixturevalue("milvus"), "planted"
    else:
        uri, prefix = str(tmp_path_factory.mktemp("planted") / "p.db"), "vidseek"
    videos = build_planted_store(uri, tiny_clip, metadata=meta, prefix=prefix)
    searcher = Searcher(VideoStore(uri, prefix), clip=tiny_clip, in_memory=request.param == "in-memory")
    yield searcher, videos
    searcher.store.close()


def order(hits) -> list[str]:
    return [h.video_id for h in hits]


def test_mean_prefers_diffuse_weighted_and_max_prefer_brief(planted):
    searcher, _ = planted
    assert order(searcher.search(QUERY, aggregation="mean", rerank=False))[0] == "diffuse"
    assert order(searcher.search(QUERY, aggregation="max", rerank=False))[0] == "brief"
    assert order(searcher.search(QUERY, aggregation="query-weighted", tau=0.1, rerank=False))[0] == "brief"
    # τ → ∞ is the raw-frame mean: the brief event is diluted again
    assert order(searcher.search(QUERY, aggregation="query-weighted", tau=100.0, rerank=False))[0] == "diffuse"


def test_scores_match_operator_reference(planted, tiny_clip):
    searcher, videos = planted
    q = searcher.encode_queries([QUERY])
    hits = {h.video_id: h for h in searcher.search(QUERY, aggregation="query-weighted", rerank=False, k=10)}
    assert set(hits) == set(videos)  # one hit per video, none lost
    for vid, vecs in videos.items():
        ref = float(query_weighted_score(q, vecs[None].astype(np.float32))[0, 0])
        assert hits[vid].score == pytest.approx(ref, abs=1e-4)
    mean_hits = {h.video_id: h.score for h in searcher.search(QUERY, aggregation="mean", rerank=False, k=10)}
    for vid, vecs in videos.items():
        assert mean_hits[vid] == pytest.approx(float(mean_score(q, vecs[None].astype(np.float32))[0, 0]), abs=1e-4)


def test_rerank_alpha_moves_between_first_stage_and_max(planted):
    searcher, _ = planted
    assert order(searcher.search(QUERY, aggregation="mean", rerank=True, alpha=1.0))[0] == "diffuse"
    assert order(searcher.search(QUERY, aggregation="mean", rerank=True, alpha=0.2))[0] == "brief"
    by_max = order(searcher.search(QUERY, aggregation="max", rerank=False, k=10))
    assert order(searcher.search(QUERY, aggregation="mean", rerank=True, alpha=0.0, k=10)) == by_max
    hit = searcher.search(QUERY, aggregation="mean", rerank=True, alpha=0.2)[0]
    assert set(hit.scores) == {"initial", "fine", "fused"} and 0.0 <= hit.scores["fused"] <= 1.0


def test_best_moment_points_at_the_event(planted):
    searcher, _ = planted
    hit = next(h for h in searcher.search(QUERY, aggregation="max", rerank=False) if h.video_id == "brief")
    assert hit.moment == (float(BRIEF_IDX), float(BRIEF_IDX + 1))
    assert hit.best_t == pytest.approx(BRIEF_IDX + 0.5)


def test_filters_and_batches(planted):
    searcher, _ = planted
    news = searcher.search(QUERY, filter=parse_user_filter("genre=news"), k=10)
    assert order(news) == ["diffuse"]
    recent = searcher.search(QUERY, filter=parse_user_filter("year>=2020"), k=10)
    assert order(recent) == ["brief"]
    hostile = parse_user_filter('genre=news" or video_id != "')  # quoted as one string value
    assert searcher.search(QUERY, filter=hostile, k=10) == []
    batch = searcher.search([QUERY, "something else"], k=3, rerank=False, aggregation="max")
    single = searcher.search(QUERY, k=3, rerank=False, aggregation="max")
    assert len(batch) == 2 and len(batch[1]) == 3
    # the noise videos are exactly orthogonal to the query (tied at ~0), so compare scores, not their order
    assert [h.score for h in batch[0]] == pytest.approx([h.score for h in single], abs=1e-5)
    assert order(batch[0])[:2] == order(single)[:2] == ["brief", "diffuse"]


def test_bad_parameters_and_empty_store(planted, tmp_path, tiny_clip):
    searcher, _ = planted
    with pytest.raises(ValueError, match="aggregation"):
        searcher.search(QUERY, aggregation="median")
    with pytest.raises(ValueError):
        SearchParams(k=0).validate()
    with pytest.raises(ValueError, match="alpha"):
        searcher.search(QUERY, alpha=1.5)
    with pytest.raises(StoreError, match="learned"):
        searcher.search(QUERY, aggregation="learned")
    empty = VideoStore(str(tmp_path / "empty.db"))
    with pytest.raises(StoreError, match="vidseek index"):
        Searcher(empty, clip=tiny_clip)
    empty.close()


def test_replica_equals_store_path_and_follows_writes(tmp_path, tiny_clip):
    """Same hits, scores and moments from both paths on a store of 40 random videos; a write marked as
    changed is seen by the next in-memory search, a deletion disappears from it."""
    rng = np.random.default_rng(3)
    uri = str(tmp_path / "r.db")
    store = VideoStore(uri)
    store.ensure_model(tiny_clip.stamp())
    dim = store.dim

    def add(vid: str, n: int) -> None:
        vecs = rng.standard_normal((n, dim)).astype(np.float32) * rng.uniform(1, 3)
        t = np.arange(n, dtype=np.float32)
        store.insert_frames(vid, FrameTable.of(np.arange(n), t + 0.5, t, t + 1, vecs))
        store.upsert_videos(
            [
                {
                    "video_id": vid,
                    "path": f"/v/{vid}.mp4",
                    "n_frames": n,
                    "mean_vec": vecs.mean(0) / np.linalg.norm(vecs.mean(0)),
                }
            ]
        )

    for i in range(40):
        add(f"v{i:02d}", int(rng.integers(1, 30)))
    via_store = Searcher(store, clip=tiny_clip, cache_vectors=0)
    in_memory = Searcher(store, clip=tiny_clip, in_memory=True)
    queries = ["a dog", "a red car at night", "people"]
    for params in (
        SearchParams(aggregation="mean", rerank=False, k=40),
        SearchParams(k=15, depth=10),
        SearchParams(aggregation="max", k=40, depth=40),
    ):
        for a, b in zip(via_store.search(queries, params), in_memory.search(queries, params)):
            assert order(a) == order(b)
            assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5, nan_ok=True)
            assert [h.moment for h in a] == [h.moment for h in b]
    assert len(in_memory.replica) == 40

    add("late", 5)
    assert "late" not in order(in_memory.search("a dog", k=50, rerank=False))  # a snapshot until told
    in_memory.replica.mark_changed(["late"])
    assert "late" in order(in_memory.search("a dog", k=50, rerank=False))
    store.delete_videos(["v00"])
    in_memory.replica.mark_changed(["v00"])
    assert "v00" not in order(in_memory.search("a dog", k=50, rerank=False)) and len(in_memory.replica) == 40
    store.close()


# -- a store of a random-weights model says so ----------------------------------------------------------
@pytest.fixture(scope="module")
def random_and_trained(tmp_path_factory, tiny_clip, testbed_clip):
    """Planted stores of tiny-random (random weights) and of the trained testbed model."""
    root = tmp_path_factory.mktemp("stamps")
    uris = {"random": str(root / "random.db"), "trained": str(root / "trained.db")}
    build_planted_store(uris["random"], tiny_clip)
    build_planted_store(uris["trained"], testbed_clip)
    return uris


def test_searcher_warns_once_on_a_random_weights_store(random_and_trained, tiny_clip, testbed_clip):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        searcher = Searcher(VideoStore(random_and_trained["random"]), clip=tiny_clip)
        searcher.search(QUERY)
        searcher.search([QUERY, "another"])
    seen = [w for w in caught if issubclass(w.category, RandomWeightsWarning)]
    assert len(seen) == 1  # at construction, not per search
    assert str(seen[0].message) == searcher.model_warning
    assert searcher.model_warning.startswith("model tiny-random has random weights: search results are random")
    assert "--model ViT-B-32 --pretrained /path/to/open_clip_model.safetensors" in searcher.model_warning
    searcher.store.close()
    with warnings.catch_warnings(record=True) as quiet:
        warnings.simplefilter("always")
        searcher = Searcher(VideoStore(random_and_trained["random"]), clip=tiny_clip, warn=False)
        assert searcher.model_warning  # still known: the CLI and the service print it themselves
        searcher.store.close()
        trained = Searcher(VideoStore(random_and_trained["trained"]), clip=testbed_clip)
        assert trained.model_warning is None and trained.search(QUERY)
        trained.store.close()
    assert not [w for w in quiet if issubclass(w.category, RandomWeightsWarning)]


def test_cli_search_warns_on_stderr_only(random_and_trained):
    from typer.testing import CliRunner

    from vidseek.apps.cli.main import app

    r = CliRunner().invoke(app, ["search", QUERY, "--store", random_and_trained["random"], "--json", "--k", "2"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["hits"]) == 2  # stdout is the JSON alone
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: model tiny-random has random weights"), r.stderr
    r = CliRunner().invoke(app, ["search", QUERY, "--store", random_and_trained["trained"], "--k", "2"])
    assert r.exit_code == 0, r.output
    assert "warning" not in r.stderr and r.stdout.startswith(f"query: {QUERY!r}")
