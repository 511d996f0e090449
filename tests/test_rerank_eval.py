"""Plug-in reranking of TREC/JSONL runs, and `vidseek eval` / `eval-run` over planted stores."""

from __future__ import annotations

import json
import logging
import subprocess

import pytest
from planted import QUERY, build_planted_store
from typer.testing import CliRunner

from vidseek.apps.cli.main import app
from vidseek.operators.decode import decode_frames
from vidseek.operators.encode import encode_images, encode_texts
from vidseek.retrieval.datasets import CaptionPair
from vidseek.retrieval.evaluate import EvalRow, evaluate, markdown_table, parse_config, pessimistic_rank
from vidseek.retrieval.metrics import trec_metrics
from vidseek.retrieval.rerank import FrameEvidence, max_frame_score, rerank_run
from vidseek.retrieval.runfiles import Candidate, RunQuery, read_run, run_to_dict, write_run
from vidseek.retrieval.search import Hit, Searcher
from vidseek.store.video_store import VideoStore


@pytest.fixture(scope="module", params=["lite", pytest.param("server", marks=[pytest.mark.server, pytest.mark.slow])])
def planted_uri(request, tmp_path_factory, tiny_clip):
    """Milvus Lite, and a real Milvus 2.3.5 server of this module's own (the CLI's default prefix)."""
    uri = (
        request.getfixturevalue("milvus") if request.param == "server" else str(tmp_path_factory.mktemp("rr") / "p.db")
    )
    build_planted_store(uri, tiny_clip)
    return uri


@pytest.fixture
def store(planted_uri):
    s = VideoStore(planted_uri)
    yield s
    s.close()


def trec_run(tmp_path) -> str:
    ids = ["noise0", "noise1", "diffuse", "unknown_video", "brief", "noise2"]
    path = tmp_path / "run.trec"
    path.write_text("".join(f"q1 Q0 {d} {r} {10 - r}.0 bm25\n" for r, d in enumerate(ids, 1)))
    return str(path)


def test_trec_round_trip_keeps_ids_and_unknowns(store, tiny_clip, tmp_path, caplog):
    queries, fmt = read_run(trec_run(tmp_path))
    evidence = FrameEvidence(tiny_clip, store, cache_dir=None)
    with caplog.at_level(logging.WARNING):
        out, report = rerank_run(queries, evidence, alpha=0.2, depth=100, query_text={"q1": QUERY})
    assert "no frame evidence" in caplog.text and report.without_evidence == ["q1:unknown_video"]
    write_run(tmp_path / "out.trec", out, fmt, score_from_rank=True)
    back, _ = read_run(tmp_path / "out.trec")
    ids = [c.id for c in back[0].candidates]
    assert sorted(ids) == sorted(c.id for c in queries[0].candidates)  # same set, nothing dropped
    assert ids.index("unknown_video") == 3  # kept its slot
    assert ids[0] == "brief"  # the brief event's frame lifts it with frame evidence weighted 0.8
    lines = (tmp_path / "out.trec").read_text().split("\n")[:-1]
    assert [int(line.split()[3]) for line in lines] == list(range(1, 7))
    scores = [float(line.split()[4]) for line in lines]
    assert scores == sorted(scores, reverse=True)
    assert report.evidence["store"] == 5


def test_jsonl_run_keeps_format_and_components(store, tiny_clip, tmp_path):
    q = RunQuery("q7", QUERY, [Candidate("diffuse", 3.0), Candidate("brief", 1.0, extra={"src": "x"})])
    write_run(tmp_path / "in.jsonl", [q], "jsonl")
    queries, fmt = read_run(tmp_path / "in.jsonl")
    assert fmt == "jsonl"
    out, _ = rerank_run(queries, FrameEvidence(tiny_clip, store, cache_dir=None), alpha=0.0)
    write_run(tmp_path / "out.jsonl", out, fmt, score_from_rank=True)
    rec = json.loads((tmp_path / "out.jsonl").read_text())
    assert [c["id"] for c in rec["candidates"]] == ["brief", "diffuse"]  # α = 0: max frame score decides
    assert rec["candidates"][0]["src"] == "x" and rec["candidates"][0]["initial_score"] == 1.0
    assert rec["candidates"][0]["fine_score"] == pytest.approx(1.0, abs=1e-5)


def test_reranks_without_any_index_and_caches(tiny_clip, tmp_path):
    video = tmp_path / "v.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=3:size=96x72:rate=10",
            "-pix_fmt",
            "yuv420p",
            str(video),
        ],
        check=True,
    )
    cands = [RunQuery("q", "a test pattern", [Candidate("v", 2.0), Candidate("gone", 1.0)])]
    ev = FrameEvidence(tiny_clip, None, video_root=tmp_path, cache_dir=tmp_path / "cache")
    out, report = rerank_run(cands, ev)
    assert report.evidence == {"store": 0, "decoded": 1, "cached": 0, "missing": 1}
    frames, *_ = decode_frames(str(video), tiny_clip.preprocess)
    want = max_frame_score(encode_texts(tiny_clip, ["a test pattern"])[0], encode_images(tiny_clip, frames))
    assert out[0].candidates[0].extra["fine_score"] == pytest.approx(want, abs=1e-5)
    _, report2 = rerank_run(cands, FrameEvidence(tiny_clip, None, video_root=tmp_path, cache_dir=tmp_path / "cache"))
    assert report2.evidence["cached"] == 1 and report2.evidence["decoded"] == 0
    with pytest.raises(ValueError, match="no text"):
        rerank_run([RunQuery("q", None, [Candidate("v", 1.0)])], ev)


def test_eval_ranks_per_configuration(planted_uri, tiny_clip):
    searcher = Searcher(planted_uri, clip=tiny_clip)
    try:
        pairs = [CaptionPair("brief", QUERY), CaptionPair("/videos/diffuse.mp4", QUERY)]
        rows = {
            r.config: r
            for r in evaluate(searcher, pairs, [parse_config("mean"), parse_config("max"), parse_config("mean+rerank")])
        }
    finally:
        searcher.store.close()
    # mean: diffuse first, brief second; max: brief first, diffuse second (its frames are 0.6·q)
    assert rows["mean"].metrics["R@1"] == 50.0 and rows["mean"].metrics["MnR"] == 1.5
    assert rows["max"].metrics["R@1"] == 50.0 and rows["max"].metrics["MdR"] == 1.5
    assert rows["mean"].recall_curve[:2] == [50.0, 100.0]
    with pytest.raises(ValueError, match="not indexed"):
        evaluate(Searcher(VideoStore(planted_uri), clip=tiny_clip), [CaptionPair("nope", "x")], [parse_config("max")])


def test_pessimistic_ranks_on_ties():
    hits = [Hit("a", "", 0.5), Hit("b", "", 0.5), Hit("c", "", 0.1)]
    assert pessimistic_rank(hits, "a", 10, 100, False) == 2  # tied with b: counted against the query
    assert pessimistic_rank(hits, "c", 10, 100, False) == 3
    assert pessimistic_rank(hits, "zzz", 10, 100, False) == 10  # never retrieved: worst rank


def test_cli_eval_and_eval_run(planted_uri, tmp_path):
    ds = tmp_path / "d.csv"
    ds.write_text(f"video,caption\nbrief,{QUERY}\ndiffuse,{QUERY}\n")
    res = CliRunner().invoke(
        app,
        [
            "eval",
            "--dataset",
            str(ds),
            "--store",
            planted_uri,
            "--config",
            "max",
            "--config",
            "query-weighted:0.05+rerank",
            "--out",
            str(tmp_path / "ev"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output.strip().splitlines()[-1])
    assert [r["config"] for r in rows] == ["max", "query-weighted τ=0.05 + rerank"]
    assert (tmp_path / "ev" / "recall_at_k.png").stat().st_size > 1000
    run = tmp_path / "r.trec"
    run.write_text("q1 Q0 d1 1 3.0 t\nq1 Q0 d2 2 2.0 t\nq1 Q0 d3 3 1.0 t\nq2 Q0 d1 1 1.0 t\nq2 Q0 d4 2 0.5 t\n")
    qrels = tmp_path / "qrels"
    qrels.write_text("q1 0 d2 1\nq1 0 d3 1\nq2 0 d4 2\n")
    res = CliRunner().invoke(app, ["eval-run", str(run), str(qrels), "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    from vidseek.retrieval.runfiles import read_qrels

    ours = trec_metrics(run_to_dict(read_run(run)[0]), read_qrels(qrels))
    assert got["map"] == pytest.approx(ours["map"]) and got["nDCG@10"] == pytest.approx(ours["ndcg@10"])
    assert got["map"] == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1 / 2) / 2)


def test_eval_reports_moments_when_the_captions_are_timed(planted_uri, tiny_clip):
    """The planted brief event is frame 7 (7–8 s): every method's hit points there; only max ranks it first."""
    searcher = Searcher(planted_uri, clip=tiny_clip)
    try:
        timed = [CaptionPair("brief", QUERY, ((7.0, 8.0),)), CaptionPair("diffuse", QUERY)]
        rows = {r.config: r.metrics for r in evaluate(searcher, timed, [parse_config("mean"), parse_config("max")])}
        untimed = evaluate(searcher, [CaptionPair("brief", QUERY)], [parse_config("max")])[0].metrics
    finally:
        searcher.store.close()
    assert rows["max"]["n_moments"] == 1 and rows["max"]["overlap@10"] == 100.0
    assert rows["max"]["median_err_s"] == 0.0 and rows["max"]["R@1 IoU≥0.5"] == 100.0
    assert rows["mean"]["overlap@10"] == 100.0 and rows["mean"]["R@1 IoU≥0.5"] == 0.0  # right place, rank 2
    assert "n_moments" not in untimed
    assert "moment overlap@10" in markdown_table([EvalRow("max", rows["max"], [])])
