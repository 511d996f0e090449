"""Pessimistic ranks, R@K/MdR/MnR and TREC MAP/nDCG@10/P@10 (cross-checked with pytrec_eval if present)."""

import math

import numpy as np
import pytest

from vidseek.retrieval.metrics import (
    ranks_from_scores,
    ranks_from_scores_multi,
    retrieval_metrics,
    trec_metrics,
    trec_query_metrics,
)

S = np.array(
    [
        [0.9, 0.1, 0.5],
        [0.2, 0.3, 0.3],  # gt 1 ties with column 2 -> pessimistic rank 2
        [0.1, 0.2, 0.3],
        [0.5, 0.5, 0.5],
    ]
)  # constant row -> worst rank


def test_ranks_golden_with_ties():
    np.testing.assert_array_equal(ranks_from_scores(S, np.array([0, 1, 0, 2])), [1, 2, 3, 3])


def test_ranks_validation():
    with pytest.raises(ValueError, match="NaN"):
        ranks_from_scores(np.array([[np.nan, 1.0]]), np.array([0]))
    with pytest.raises(ValueError, match="outside"):
        ranks_from_scores(S, np.array([0, 1, 0, 3]))
    with pytest.raises(ValueError, match="integer"):
        ranks_from_scores(S, np.array([0.0, 1.0, 0.0, 2.0]))


def test_multi_positive_ranks():
    row = np.array([[0.1, 0.9, 0.5, 0.5]])
    assert ranks_from_scores_multi(row, [[2, 3]]).tolist() == [2]  # ties among correct items are free
    assert ranks_from_scores_multi(row, [[2]]).tolist() == [3]  # tie with wrong column 3 counts
    mask = np.array([[False, False, True, True]])
    assert ranks_from_scores_multi(row, mask).tolist() == [2]
    with pytest.raises(ValueError, match="without any correct"):
        ranks_from_scores_multi(row, [[]])


def test_multi_with_one_positive_equals_single():
    rng = np.random.default_rng(0)
    M = rng.integers(0, 4, size=(20, 7)).astype(float)  # many ties
    gt = rng.integers(0, 7, size=20)
    np.testing.assert_array_equal(ranks_from_scores_multi(M, [[g] for g in gt]), ranks_from_scores(M, gt))


def test_retrieval_metrics_golden():
    m = retrieval_metrics(np.array([1, 2, 6, 11]))
    assert m == {"R@1": 25.0, "R@5": 50.0, "R@10": 75.0, "MdR": 4.0, "MnR": 5.0, "n": 4}
    with pytest.raises(ValueError):
        retrieval_metrics(np.array([0, 1]))
    with pytest.raises(ValueError):
        retrieval_metrics(np.array([]))


QRELS = {"q1": {"a": 1, "b": 2, "c": 0}, "q2": {"x": 0}, "q3": {"z": 1}}
RUN = {"q1": {"a": 0.5, "b": 0.5, "d": 0.9, "c": 0.5}, "q2": {"x": 1.0}, "q4": {"z": 1.0}}


def test_trec_golden_by_hand():
    # q1 ranking: d (0.9), then the 0.5-ties by docid descending: c, b, a -> relevant b@3 (rel 2), a@4 (rel 1)
    q1 = trec_query_metrics(["d", "c", "b", "a"], QRELS["q1"])
    assert q1["map"] == pytest.approx((1 / 3 + 2 / 4) / 2)
    dcg, idcg = 2 / math.log2(4) + 1 / math.log2(5), 2 / 1 + 1 / math.log2(3)
    assert q1["ndcg@10"] == pytest.approx(dcg / idcg)
    assert q1["P@10"] == pytest.approx(0.2)
    m = trec_metrics(RUN, QRELS)  # q1 and q2 (q3 has no run, q4 no qrels)
    assert m["n"] == 2 and m["map"] == pytest.approx(5 / 24) and m["P@10"] == pytest.approx(0.1)
    assert trec_metrics(RUN, QRELS, complete=True)["n"] == 3
    with pytest.raises(ValueError):
        trec_metrics({"q9": {"a": 1.0}}, QRELS)


def test_trec_matches_pytrec_eval():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = np.random.default_rng(1)
    run, qrels = {}, {}
    for q in range(15):
        docs = [f"d{j}" for j in range(25)]
        run[f"q{q}"] = {d: float(rng.integers(0, 6)) / 5 for d in rng.choice(docs, 18, replace=False)}  # ties
        qrels[f"q{q}"] = {d: int(rng.integers(0, 4)) for d in rng.choice(docs, 10, replace=False)}
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"map", "ndcg_cut.10", "P.10"}).evaluate(run)
    assert len(ref) == 15
    pairs = (("map", "map"), ("ndcg@10", "ndcg_cut_10"), ("P@10", "P_10"))
    for q, theirs in ref.items():
        mine = trec_metrics({q: run[q]}, {q: qrels[q]})
        for key, ref_key in pairs:
            assert mine[key] == pytest.approx(theirs[ref_key], abs=1e-9), (q, key)
    mean = trec_metrics(run, qrels)
    for key, ref_key in pairs:
        assert mean[key] == pytest.approx(np.mean([v[ref_key] for v in ref.values()]), abs=1e-9), key
