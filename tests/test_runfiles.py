"""TREC/JSONL run files, query files and qrels: ordering, round trips and line-numbered errors."""

import json
import logging

import pytest

from vidseek.retrieval.runfiles import (
    Candidate,
    RunQuery,
    detect_format,
    read_qrels,
    read_queries,
    read_run,
    run_to_dict,
    write_qrels,
    write_queries,
    write_run,
)

TREC = """q2 Q0 v9 2 0.5 sysA
q2 Q0 v7 1 0.9 sysA

q1 Q0 d3 3 0.1 sysA
q1 Q0 d1 1 0.7 sysA
q1 Q0 d2 1 0.8 sysA
"""


def test_trec_read_orders_by_rank_then_score(tmp_path):
    p = tmp_path / "run.txt"
    p.write_text(TREC)
    queries, fmt = read_run(p)
    assert fmt == "trec"
    assert [q.query_id for q in queries] == ["q2", "q1"]  # file order of first appearance
    assert [c.id for c in queries[1].candidates] == ["d2", "d1", "d3"]  # rank 1 tie -> higher score first
    assert queries[1].candidates[0].score == 0.8 and queries[1].query is None


def test_trec_round_trip_rewrites_ranks(tmp_path):
    src, out = tmp_path / "run.txt", tmp_path / "out.txt"
    src.write_text(TREC)
    queries, _ = read_run(src)
    write_run(out, queries, "trec", tag="rerank")
    lines = out.read_text().splitlines()
    assert lines[2] == "q1 Q0 d2 1 0.8 rerank" and lines[4] == "q1 Q0 d3 3 0.1 rerank"
    again, _ = read_run(out)
    assert again == queries


def test_jsonl_round_trip_keeps_path_extra_and_query(tmp_path):
    qs = [RunQuery("7", "a dog runs", [Candidate("v2", 0.25, "/data/v2.mp4", {"t": 3.5}), Candidate("v1", 0.5)])]
    p = tmp_path / "run.jsonl"
    write_run(p, qs, "jsonl")
    rows = [json.loads(line) for line in p.read_text().splitlines()]
    assert [c["rank"] for c in rows[0]["candidates"]] == [1, 2]
    assert detect_format(p) == "jsonl"
    back, fmt = read_run(p)
    assert fmt == "jsonl" and back == qs  # candidate order is file order, not score order


def test_score_from_rank(tmp_path):
    qs = [RunQuery("q", None, [Candidate("a", 0.1), Candidate("b", 0.9), Candidate("c", 0.5)])]
    p = tmp_path / "r.txt"
    write_run(p, qs, "trec", score_from_rank=True)
    assert [line.split()[4] for line in p.read_text().splitlines()] == ["3.0", "2.0", "1.0"]
    assert run_to_dict(read_run(p)[0]) == {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}


@pytest.mark.parametrize(
    "bad, msg",
    [
        ("q1 Q0 d1 1 0.5", "expected 6 fields"),
        ("q1 Q0 d1 one 0.5 t", "rank"),
        ("q1 Q0 d1 1 nan t", "finite"),
    ],
)
def test_trec_malformed_line_names_file_and_line(tmp_path, bad, msg):
    p = tmp_path / "bad.txt"
    p.write_text(f"q1 Q0 d0 1 0.9 t\n\n{bad}\n")
    with pytest.raises(ValueError, match=msg) as e:
        read_run(p)
    assert f"{p}:3:" in str(e.value)


def test_trec_repeated_docid_keeps_best_ranked_and_warns(tmp_path, caplog):
    p = tmp_path / "fused.txt"
    p.write_text(
        "q1 Q0 d0 5 0.99 t\n"  # worse rank, despite the higher score
        "q1 Q0 d1 1 0.9 t\n"
        "q1 Q0 d0 2 0.4 t\n"
        "q1 Q0 d0 2 0.5 t\n"  # best-ranked: rank 2, tie on rank -> higher score
        "q2 Q0 d0 1 0.3 t\n"
        "q2 Q0 d0 4 0.1 t\n"
    )
    with caplog.at_level(logging.WARNING, logger="vidseek.retrieval.runfiles"):
        queries, _ = read_run(p)
    assert [(c.id, c.score) for c in queries[0].candidates] == [("d1", 0.9), ("d0", 0.5)]
    assert [(c.id, c.score) for c in queries[1].candidates] == [("d0", 0.3)]
    for q in queries:
        assert len({c.id for c in q.candidates}) == len(q.candidates)
    assert [r.getMessage() for r in caplog.records] == [
        f"{p}: 3 repeated docid rows dropped, kept the best-ranked occurrence of each: "
        "query 'q1' docid 'd0' (2 dropped), query 'q2' docid 'd0' (1 dropped)"
    ]


def test_jsonl_repeated_candidate_keeps_first_and_warns(tmp_path, caplog):
    p = tmp_path / "merged.jsonl"
    p.write_text(
        json.dumps(
            {
                "query_id": "q1",
                "candidates": [
                    {"id": "a", "score": 0.2, "src": "first"},
                    {"id": "b", "score": 0.9},
                    {"id": "a", "score": 0.8, "src": "second"},
                ],
            }
        )
        + "\n"
    )
    with caplog.at_level(logging.WARNING, logger="vidseek.retrieval.runfiles"):
        queries, _ = read_run(p)
    assert [(c.id, c.score, c.extra) for c in queries[0].candidates] == [("a", 0.2, {"src": "first"}), ("b", 0.9, {})]
    assert caplog.messages == [
        f"{p}: 1 repeated docid rows dropped, kept the best-ranked occurrence of each: query 'q1' docid 'a' (1 dropped)"
    ]


def test_many_repeats_give_one_warning(tmp_path, caplog):
    p = tmp_path / "fused.txt"
    p.write_text("".join(f"q1 Q0 d{i} {r} 0.5 t\n" for r in (1, 2, 3) for i in range(7)))
    with caplog.at_level(logging.WARNING, logger="vidseek.retrieval.runfiles"):
        queries, _ = read_run(p)
    assert [c.id for c in queries[0].candidates] == [f"d{i}" for i in range(7)]
    assert len(caplog.records) == 1
    msg = caplog.messages[0]
    assert msg.startswith(f"{p}: 14 repeated docid rows dropped") and msg.endswith("and 2 more docids")
    assert "query 'q1' docid 'd0' (2 dropped)" in msg


def test_clean_run_does_not_warn(tmp_path, caplog):
    p = tmp_path / "run.txt"
    p.write_text(TREC)
    with caplog.at_level(logging.WARNING, logger="vidseek.retrieval.runfiles"):
        read_run(p)
    assert caplog.records == []


@pytest.mark.parametrize(
    "bad, msg",
    [
        ('{"query_id": "q2", "candidates": [}', "invalid JSON"),
        ('{"query_id": "q2", "candidates": [{"id": "a"}]}', "score"),
        ('{"query": "x", "candidates": []}', "query_id"),
        ('{"query_id": "q1", "candidates": []}', "twice"),
    ],
)
def test_jsonl_malformed_line(tmp_path, bad, msg):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"query_id": "q1", "candidates": [{"id": "a", "score": 1}]}\n' + bad + "\n")
    with pytest.raises(ValueError, match=msg) as e:
        read_run(p)
    assert f"{p}:2:" in str(e.value)


def test_write_run_validation(tmp_path):
    qs = [RunQuery("q 1", None, [Candidate("a", 1.0)])]
    with pytest.raises(ValueError, match="query_id"):
        write_run(tmp_path / "r", qs, "trec")
    with pytest.raises(ValueError, match="tag"):
        write_run(tmp_path / "r", [], "trec", tag="my run")
    with pytest.raises(ValueError, match="format"):
        write_run(tmp_path / "r", [], "csv")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        read_run(tmp_path / "empty")


def test_queries_tsv_and_trec_topics(tmp_path):
    p = tmp_path / "q.tsv"
    write_queries(p, {"1": "a man cooks", "2": "two dogs play"})
    assert read_queries(p) == {"1": "a man cooks", "2": "two dogs play"}
    t = tmp_path / "topics.txt"
    t.write_text(
        "<top>\n<num> Number: 301\n<title> Topic: dogs\n  playing\n<desc> Description:\nx\n</top>\n"
        "<top><num> 302 <title> cats</top>\n"
    )
    assert read_queries(t) == {"301": "dogs playing", "302": "cats"}
    p.write_text("1\ta\n2 no tab\n")
    with pytest.raises(ValueError, match=r"q\.tsv:2:"):
        read_queries(p)
    with pytest.raises(ValueError, match="tabs"):
        write_queries(p, {"1": "a\tb"})


def test_qrels_round_trip_and_errors(tmp_path):
    p = tmp_path / "qrels.txt"
    write_qrels(p, {"q1": {"d1": 1, "d2": 0}, "q2": {"d9": 2}})
    assert read_qrels(p) == {"q1": {"d1": 1, "d2": 0}, "q2": {"d9": 2}}
    p.write_text("q1 0 d1 1\nq1 0 d2 high\n")
    with pytest.raises(ValueError, match=r"qrels\.txt:2: relevance"):
        read_qrels(p)
    p.write_text("q1 d1 1\n")
    with pytest.raises(ValueError, match="4 fields"):
        read_qrels(p)
