"""Retrieval metrics: ranks and R@K/MdR/MnR from a score matrix, and TREC MAP/nDCG@10/P@10 (docs/methods.md).

Ranks are 1-based and **pessimistic**: a wrong item whose score *ties* the correct one counts as ranked
above it, r_i = 1 + #{j ≠ gt_i : S_ij ≥ S_i,gt}. So a constant score matrix gives every query the worst
rank, not rank 1 (an optimistic rule would reward a model that outputs constants). NaN scores are rejected.

TREC metrics follow trec_eval (and so ``pytrec_eval``), which the tests cross-check:
- the ranking comes from the scores only: score descending, ties by docid in *descending* string order;
- a document is relevant when its qrel is ≥ 1; unjudged documents are non-relevant;
- AP = Σ_{relevant retrieved at rank r} P@r / #relevant in the qrels (0 when a query has none);
- nDCG@10 uses linear gain (the qrel value) and 1/log2(rank + 1); the ideal ranking comes from the qrels;
- P@10 always divides by 10, even when fewer documents were retrieved;
- queries are averaged over run ∩ qrels; ``complete=True`` (trec_eval -c) also counts qrels-only queries
  as 0.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np


def _scores(S: np.ndarray) -> np.ndarray:
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2:
        raise ValueError(f"need a [Q, V] score matrix, got shape {S.shape}")
    if np.isnan(S).any():
        raise ValueError("score matrix contains NaN")
    return S


def ranks_from_scores(S: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """1-based pessimistic rank [Q] of the correct column gt[i] in each row of S [Q, V]."""
    S = _scores(S)
    gt = np.asarray(gt)
    if gt.shape != (S.shape[0],) or not np.issubdtype(gt.dtype, np.integer):
        raise ValueError(f"gt must be {S.shape[0]} integer column indices, got {gt.dtype} {gt.shape}")
    if ((gt < 0) | (gt >= S.shape[1])).any():
        raise ValueError(f"gt holds indices outside [0, {S.shape[1]})")
    rows = np.arange(S.shape[0])
    target = S[rows, gt][:, None]  # [Q, 1]
    # (S >= target) counts gt itself once: that is the "1 +" of the formula
    return (S >= target).sum(axis=1).astype(np.int64)  # [Q]


def _positive_mask(positives, shape: tuple[int, int]) -> np.ndarray:
    if isinstance(positives, np.ndarray) and positives.dtype == bool:
        if positives.shape != shape:
            raise ValueError(f"positives mask {positives.shape} does not match scores {shape}")
        return positives
    if len(positives) != shape[0]:
        raise ValueError(f"{len(positives)} positive sets for {shape[0]} queries")
    mask = np.zeros(shape, dtype=bool)
    for i, cols in enumerate(positives):
        for j in cols:
            if not 0 <= int(j) < shape[1]:
                raise ValueError(f"query {i}: positive index {j} outside [0, {shape[1]})")
            mask[i, int(j)] = True
    return mask


def ranks_from_scores_multi(S: np.ndarray, positives: np.ndarray | Sequence[Iterable[int]]) -> np.ndarray:
    """Rank [Q] of the best-ranked correct item when a query has several (bool mask [Q, V] or index lists).

    Pessimistic: r_i = 1 + #{j wrong : S_ij ≥ max over correct S_ic}; ties among correct items do not
    matter.
    """
    S = _scores(S)
    pos = _positive_mask(positives, S.shape)  # [Q, V]
    if not pos.any(axis=1).all():
        empty = np.flatnonzero(~pos.any(axis=1))[:10].tolist()
        raise ValueError(f"queries without any correct item: {empty}")
    best = np.where(pos, S, -np.inf).max(axis=1, keepdims=True)  # [Q, 1]
    return 1 + ((S >= best) & ~pos).sum(axis=1).astype(np.int64)  # [Q]


def retrieval_metrics(ranks: np.ndarray) -> dict[str, float]:
    """R@1/R@5/R@10 (percent), MdR, MnR and n from 1-based ranks."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"need a non-empty 1-D array of ranks, got shape {r.shape}")
    if (r < 1).any():
        raise ValueError("ranks are 1-based; got a rank < 1")
    out = {f"R@{k}": float(100.0 * np.mean(r <= k)) for k in (1, 5, 10)}
    out.update(MdR=float(np.median(r)), MnR=float(np.mean(r)), n=int(r.size))
    return out


# ---------------------------------------------------------------- TREC-style (reranking evaluation)


def _trec_order(docs: Mapping[str, float]) -> list[str]:
    """trec_eval's ranking: score descending, ties by docid descending."""
    by_id = sorted(docs, reverse=True)  # secondary key first (stable sort)
    return sorted(by_id, key=lambda d: -float(docs[d]))


def trec_query_metrics(ranked: Sequence[str], rels: Mapping[str, int], k: int = 10) -> dict[str, float]:
    """AP, nDCG@k and P@k of one ranked docid list against one query's qrels."""
    n_rel = sum(1 for v in rels.values() if v >= 1)
    hits, ap, dcg = 0, 0.0, 0.0
    for r, doc in enumerate(ranked, start=1):
        rel = rels.get(doc, 0)
        if rel >= 1:
            hits += 1
            ap += hits / r
        if r <= k and rel > 0:
            dcg += rel / math.log2(r + 1)
    ideal = sorted((v for v in rels.values() if v > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(r + 1) for r, g in enumerate(ideal, start=1))
    p_k = sum(1 for d in ranked[:k] if rels.get(d, 0) >= 1) / k
    return {"map": ap / n_rel if n_rel else 0.0, f"ndcg@{k}": dcg / idcg if idcg > 0 else 0.0, f"P@{k}": p_k}


def trec_metrics(
    run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]], k: int = 10, complete: bool = False
) -> dict[str, float]:
    """Mean MAP, nDCG@k, P@k over queries (keys "map", "ndcg@k", "P@k", "n"); see the module notes."""
    qids = [q for q in qrels if q in run] if not complete else list(qrels)
    if not qids:
        raise ValueError("trec_metrics: no query appears in both run and qrels")
    per = [trec_query_metrics(_trec_order(run.get(q, {})), qrels[q], k) for q in qids]
    out = {m: sum(p[m] for p in per) / len(per) for m in per[0]}
    out["n"] = len(per)
    return out
