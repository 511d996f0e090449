"""CLIPRerank fusion, its NaN/depth policies, per query and over a gallery, on hand-computed examples."""

import math

import numpy as np
import pytest

from vidseek.retrieval.fusion import fuse, minmax, rerank, rerank_matrix


def test_minmax_golden_constant_and_nan():
    np.testing.assert_allclose(minmax(np.array([1.0, 3.0, 2.0])), [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(minmax(np.array([2.0, 2.0, 2.0])), [0.0, 0.0, 0.0])
    out = minmax(np.array([1.0, np.nan, 3.0]))
    assert out[0] == 0.0 and out[2] == 1.0 and math.isnan(out[1])
    assert np.isnan(minmax(np.array([np.nan, np.nan]))).all()
    assert minmax(np.array([])).shape == (0,)


def test_minmax_rows_and_inf():
    np.testing.assert_allclose(minmax(np.array([[0.0, 2.0], [5.0, 5.0]])), [[0.0, 1.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="inf"):
        minmax(np.array([0.0, np.inf]))


def test_fuse_golden():
    # minmax(initial) = [1, 0, .5], minmax(fine) = [.5, 1, 0]
    np.testing.assert_allclose(fuse(np.array([10.0, 0.0, 5.0]), np.array([0.2, 0.3, 0.1]), 0.4), [0.7, 0.6, 0.2])


@pytest.mark.parametrize("alpha", [-0.1, 1.1, float("nan")])
def test_fuse_rejects_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        fuse(np.zeros(2), np.zeros(2), alpha)


def test_fuse_rejects_shape_mismatch_and_nan_initial():
    with pytest.raises(ValueError, match="shapes"):
        fuse(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        fuse(np.array([np.nan, 1.0]), np.zeros(2))


def rerank_order(ids, initial, fine, alpha=0.4, depth=None):
    """``ids`` in ``rerank``'s new order (what search and the plug-in reranker do with it)."""
    order, _ = rerank(initial, fine, alpha, depth)
    return [ids[i] for i in order]


IDS = ["a", "b", "c"]
INITIAL = np.array([1.0, 0.9, 0.0])  # minmax -> [1, .9, 0]
FINE = np.array([0.0, 1.0, 0.9])  # minmax -> [0, 1, .9]


def test_alpha_extremes_reduce_to_single_orders():
    assert rerank_order(IDS, INITIAL, FINE, alpha=1.0) == ["a", "b", "c"]
    assert rerank_order(IDS, INITIAL, FINE, alpha=0.0) == ["b", "c", "a"]
    # alpha = 1 sorts by the initial scores even when the input is not sorted by them
    assert rerank_order(IDS, np.array([1.0, 3.0, 2.0]), FINE, alpha=1.0) == ["b", "c", "a"]


def test_fused_order_differs_from_both():
    # alpha .5: a .5, b .95, c .45
    assert rerank_order(IDS, INITIAL, FINE, alpha=0.5) == ["b", "a", "c"]


def test_depth_only_rescores_head():
    ids = ["a", "b", "c", "d"]
    initial, fine = np.array([4.0, 3.0, 2.0, 1.0]), np.array([0.0, 1.0, 5.0, 5.0])
    out = rerank_order(ids, initial, fine, alpha=0.0, depth=2)
    assert out == ["b", "a", "c", "d"]  # c, d have the best fine scores but lie beyond depth
    order, fused = rerank(initial, fine, 0.0, depth=2)
    np.testing.assert_array_equal(order, [1, 0, 2, 3])
    assert np.isnan(fused[2:]).all() and fused[1] == 1.0
    assert rerank_order(ids, np.arange(4.0)[::-1], np.arange(4.0), 0.0, depth=0) == ids
    assert rerank_order(ids, np.arange(4.0)[::-1], np.arange(4.0), 0.0, depth=99) == ids[::-1]


def test_missing_fine_score_keeps_its_slot():
    ids = ["a", "b", "c", "d"]
    out = rerank_order(ids, np.array([4.0, 3.0, 2.0, 1.0]), np.array([0.1, np.nan, 0.9, 0.5]), alpha=0.0)
    assert out == ["c", "b", "d", "a"]  # b stays 2nd; c, d, a fill slots 0, 2, 3 by fine score


def test_ties_keep_input_order_and_bad_args():
    assert rerank_order(IDS, np.zeros(3), np.ones(3), alpha=0.4) == IDS
    with pytest.raises(ValueError, match="depth"):
        rerank_order(IDS, INITIAL, FINE, depth=-1)
    with pytest.raises(ValueError, match="equal length"):
        rerank(INITIAL[:1], FINE)


def test_gallery_rerank_is_the_per_query_rerank():
    first = np.array([[1.0, 0.9, 0.0], [0.0, 0.9, 1.0]])  # query 1: the same lists, reversed columns
    fine = np.array([[0.0, 1.0, 0.9], [0.9, 1.0, 0.0]])
    fused = rerank_matrix(first, fine, alpha=0.5)
    assert [IDS[j] for j in np.argsort(-fused[0])] == rerank_order(IDS, INITIAL, FINE, alpha=0.5)
    assert [IDS[::-1][j] for j in np.argsort(-fused[1])] == ["b", "a", "c"]
    assert len(set(fused[0])) == 3  # no ties: ranks follow the order exactly
    with pytest.raises(ValueError, match="one shape"):
        rerank_matrix(first, fine[:1])
