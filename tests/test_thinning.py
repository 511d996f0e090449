"""Frame-table thinning: the merge rule, weighted scoring, `vidseek thin` on unthinned and thinned stores,
a thinning stopped midway, and everything that reads frames (search, moments, replica, heads, rerank)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from planted import QUERY, planted_vectors
from typer.testing import CliRunner

from vidseek.apps.cli.main import app
from vidseek.operators.aggregate import max_score, mean_pool, mean_score, pad_frames, query_weighted_score
from vidseek.operators.frame_table import FrameTable
from vidseek.operators.thinning import expand_merged, merge_similar
from vidseek.pipeline.learned import apply_head_to_store
from vidseek.retrieval.rerank import FrameEvidence, max_frame_score
from vidseek.retrieval.runfiles import Candidate
from vidseek.retrieval.search import Searcher
from vidseek.store.thin import merge_threshold_for_job, thin_store
from vidseek.store.video_store import StoreError, VideoStore, frame_pk

RUNS = [2, 1, 3, 1, 1, 4, 2, 1, 1, 3, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1]  # copies of each planted frame, 20 frames


def table(vectors: np.ndarray) -> FrameTable:
    n = len(vectors)
    t0 = np.arange(n, dtype=np.float32)
    return FrameTable(np.arange(n), t0 + 0.5, t0, t0 + 1, vectors.astype(np.float32), np.ones(n, np.int64))


def test_merge_rule_runs_spans_weights_and_anchor():
    rng = np.random.default_rng(0)
    a, n1, n2 = rng.standard_normal((3, 16)).astype(np.float32)
    b, c = a + 0.5 * n1, a + 0.5 * n2  # distinct, but within cosine 0.5 of a
    rows = table(np.stack([a, a * 2, a, b, b, c]))  # scale does not matter: the cosine does
    thin = merge_similar(rows, 1.0)
    assert thin.idx.tolist() == [0, 3, 5] and thin.merged.tolist() == [3, 2, 1]
    assert thin.t_start.tolist() == [0, 3, 5] and thin.t_end.tolist() == [3, 5, 6]
    assert thin.t.tolist() == [1.5, 3.5, 5.5]  # the middle member's time
    np.testing.assert_allclose(thin.vectors[0], a * 4 / 3, rtol=1e-6)  # mean of the raw members
    # thinning a thinned table adds the counts, and weighs each member by its own count
    again = merge_similar(FrameTable(thin.idx, thin.t, thin.t_start, thin.t_end, thin.vectors, thin.merged), 0.5)
    assert again.merged.tolist() == [6] and again.t_end.tolist() == [6]
    np.testing.assert_allclose(again.vectors[0], (4 * a + 2 * b + c) / 6, rtol=1e-5)
    # anchored: a slow drift whose neighbours are all ≥ 0.99 apart still splits once it leaves the first frame
    angles = np.linspace(0, 0.6, 13)
    drift = np.stack([np.cos(angles), np.sin(angles)], 1)
    assert all(float(drift[i] @ drift[i + 1]) > 0.99 for i in range(12))
    runs = merge_similar(table(drift), 0.99).merged
    assert runs.sum() == 13 and len(runs) > 1 and all(float(drift[0] @ drift[i]) >= 0.99 for i in range(runs[0]))
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        merge_similar(rows, 1.5)


def test_exact_duplicates_score_exactly_as_unthinned(tiny_clip):
    q, videos = planted_vectors(tiny_clip)
    full = [np.repeat(v, RUNS, axis=0).astype(np.float32) for v in videos.values()]  # [T_i, D] with duplicate runs
    thin = [merge_similar(table(f), 1.0) for f in full]
    assert all(len(t) == 20 for t in thin)
    F, m = pad_frames(full, len(q))
    G, w = pad_frames([t.vectors for t in thin], len(q), [t.merged for t in thin])
    qt = torch.from_numpy(q[None])
    for score in (mean_score, max_score):
        torch.testing.assert_close(score(qt, G, w), score(qt, F, m), atol=1e-5, rtol=0)
    for tau in (0.01, 0.1, 1.0):
        torch.testing.assert_close(query_weighted_score(qt, G, w, tau=tau), query_weighted_score(qt, F, m, tau=tau))
    torch.testing.assert_close(mean_pool(G, w), mean_pool(F, m))
    # without the weights query weighting would differ: the test can tell
    assert not torch.allclose(query_weighted_score(qt, G, w > 0, tau=1.0), query_weighted_score(qt, F, m, tau=1.0))
    for f, t in zip(full, thin):  # the heads' frame sequence comes back exactly
        np.testing.assert_allclose(expand_merged(t.vectors, t.merged), f, rtol=1e-6, atol=1e-7)


def build_store(uri: str, clip) -> dict[str, np.ndarray]:
    """The planted videos with duplicate runs; frame times 1 s apart."""
    _, videos = planted_vectors(clip)
    store = VideoStore(uri)
    store.ensure_model(clip.stamp())
    full = {}
    for vid, vecs in videos.items():
        f = np.repeat(vecs, RUNS, axis=0).astype(np.float32)
        rows = table(f)
        store.insert_frames(vid, FrameTable.of(rows.idx, rows.t, rows.t_start, rows.t_end, rows.vectors))
        store.upsert_videos(
            [
                {
                    "video_id": vid,
                    "path": f"/videos/{vid}.mp4",
                    "n_frames": len(f),
                    "duration": float(len(f)),
                    "mean_vec": mean_pool(torch.from_numpy(f)[None])[0].numpy(),
                }
            ]
        )
        full[vid] = f
    store.close()
    return full


def hits_of(uri: str, clip, in_memory: bool) -> dict:
    s = Searcher(uri, clip=clip, in_memory=in_memory)
    try:
        out = {}
        for agg in ("mean", "max", "query-weighted"):
            hits = s.search(QUERY, aggregation=agg, k=10)
            # per video (the noise videos tie near 0, in either order), and which video leads
            out[agg] = (hits[0].video_id, {h.video_id: (round(h.score, 5), h.moment) for h in hits})
        return out
    finally:
        s.store.close()


@pytest.mark.parametrize("in_memory", [False, True], ids=["store", "in-memory"])
def test_thin_an_unthinned_store_then_a_thinned_one(tmp_path, tiny_clip, in_memory):
    uri = str(tmp_path / "s.db")
    full = build_store(uri, tiny_clip)
    before = hits_of(uri, tiny_clip, in_memory)
    with VideoStore(uri) as s:
        assert s.thinning() is None
        report = thin_store(s, 1.0)
        assert (report.rows_before, report.rows_after) == (sum(RUNS) * len(full), 20 * len(full))
        assert s.thinning() == {"threshold": 1.0}
        frames = s.frames_of(list(full))
        for vid, f in full.items():  # no frame lost: the rows stand for every sampled frame, in order
            np.testing.assert_allclose(expand_merged(frames[vid].vectors, frames[vid].merged), f, rtol=1e-5)
            assert frames[vid].t_start[0] == 0 and frames[vid].t_end[-1] == len(f)
    assert hits_of(uri, tiny_clip, in_memory) == before  # same order, scores and moments
    with VideoStore(uri) as s:
        coarser = thin_store(s, 0.5)  # a thinned store thins further
        assert coarser.rows_before == 20 * len(full) and coarser.rows_after <= coarser.rows_before
        assert s.thinning() == {"threshold": 0.5}
        with pytest.raises(StoreError, match="thinned at 0.5: a finer threshold"):
            thin_store(s, 0.9)
        frames = s.frames_of(list(full))
        assert all(frames[v].merged.sum() == len(f) for v, f in full.items())


def test_a_thinning_stopped_midway_reads_right_and_a_rerun_finishes_it(tmp_path, tiny_clip):
    uri = str(tmp_path / "s.db")
    full = build_store(uri, tiny_clip)
    with VideoStore(uri) as s:
        view = {v: s.frames_of([v])[v] for v in full}
        # what thin_store does per video, stopped after the merged rows are written, before any delete
        for vid, f in full.items():
            thin = merge_similar(table(f), 1.0)
            s.upsert_frames(vid, thin)
        assert s.count_frames() == sum(RUNS) * len(full)  # the fault really happened: every member is still there
        midway = s.frames_of(list(full))
        for vid, f in full.items():
            assert len(midway[vid].idx) == 20 and midway[vid].merged.sum() == len(f)
            np.testing.assert_allclose(
                expand_merged(midway[vid].vectors, midway[vid].merged), view[vid].vectors, rtol=1e-5
            )
        thin_store(s, 1.0)
        assert s.count_frames() == 20 * len(full)
        assert {k for ks in s.frame_keys(list(full)).values() for k in ks} == {
            frame_pk(v, i) for v in full for i in np.cumsum([0, *RUNS[:-1]])
        }


def test_heads_rerank_and_moments_read_a_thinned_store(tmp_path, tiny_clip):
    uri = str(tmp_path / "s.db")
    full = build_store(uri, tiny_clip)
    with VideoStore(uri) as s:
        thin_store(s, 1.0)

        class Recorder:  # a head that records the frame sequences it is given
            id = "recorder"
            seen: list = []

            def pool(self, seqs):
                Recorder.seen.extend(seqs)
                return [np.zeros(s.dim, np.float32) for _ in seqs]

        ids = sorted(full)
        apply_head_to_store(s, Recorder(), ids)
        for i, vid in enumerate(ids):
            np.testing.assert_allclose(Recorder.seen[i], full[vid], rtol=1e-5)
        # plug-in rerank from the store: the max-frame score is that of the unthinned frames
        ev = FrameEvidence(tiny_clip, store=s, files=False, cache_dir=None)
        got = ev.fetch([Candidate(v, 0.0) for v in ids])
        t = np.random.default_rng(1).standard_normal(s.dim)
        for vid, frames in zip(ids, got):
            assert max_frame_score(t, frames) == pytest.approx(max_frame_score(t, full[vid]), abs=1e-5)
    searcher = Searcher(uri, clip=tiny_clip)
    hit = searcher.search(QUERY, aggregation="max", k=1)[0]
    searcher.store.close()
    # the planted brief frame is frame 7 of 20, repeated RUNS[7] = 1 time at t = sum(RUNS[:7])
    start = float(sum(RUNS[:7]))
    assert hit.video_id == "brief" and hit.moment[0] <= start and hit.moment[1] >= start + 1


def test_index_jobs_keep_a_store_uniformly_thinned(tmp_path, tiny_clip):
    new = str(tmp_path / "new.db")
    with VideoStore(new) as s:
        s.ensure_model(tiny_clip.stamp())
        assert merge_threshold_for_job(s, None) is None
        assert merge_threshold_for_job(s, 0.95) == 0.95  # an empty store takes the first job's threshold
        assert s.thinning() == {"threshold": 0.95}
        assert merge_threshold_for_job(s, None) == 0.95  # later jobs inherit it
        with pytest.raises(StoreError, match="thinned at 0.95, not 0.9"):
            merge_threshold_for_job(s, 0.9)
    old = str(tmp_path / "old.db")
    build_store(old, tiny_clip)
    with VideoStore(old) as s:
        with pytest.raises(StoreError, match="holds unthinned videos: thin them first"):
            merge_threshold_for_job(s, 0.95)
        assert s.thinning() is None


def test_cli_thin_and_info(tmp_path, tiny_clip):
    uri = str(tmp_path / "s.db")
    full = build_store(uri, tiny_clip)
    runner = CliRunner()
    r = runner.invoke(app, ["thin", "--store", uri, "--threshold", "1", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output.strip().splitlines()[-1])
    assert report["rows_after"] == 20 * len(full) and report["ratio"] == pytest.approx(sum(RUNS) / 20, abs=1e-3)
    info = json.loads(runner.invoke(app, ["info", "--store", uri, "--json"]).output.strip().splitlines()[-1])
    assert info["thinning"] == {"threshold": 1.0} and info["frames"] == 20 * len(full)
    r = runner.invoke(app, ["thin", "--store", uri, "--threshold", "2"])
    assert r.exit_code == 2 and "in (0, 1]" in r.output
    r = runner.invoke(app, ["thin", "--store", str(tmp_path / "empty.db"), "--threshold", "0.9"])
    assert r.exit_code == 2 and "is empty" in r.output


def test_best_moment_counts_rows_not_the_frames_they_stand_for():
    from vidseek.retrieval.search import best_moment

    t0, t1 = np.array([0.0, 3.0, 6.0]), np.array([3.0, 6.0, 7.0])
    frames = FrameTable.of(np.arange(3), (t0 + t1) / 2, t0, t1, np.ones((3, 2)), merged=[3, 3, 1])
    # three rows standing for 3 + 3 + 1 frames, the best one last: the moment must not walk past the rows
    assert best_moment(np.array([0.1, 0.2, 0.9]), np.array([3.0, 3.0, 1.0]), frames) == (6.0, 7.0, 6.5)
    assert best_moment(np.array([0.9, 0.89, 0.1]), np.array([3.0, 3.0, 1.0]), frames) == (0.0, 6.0, 1.5)
