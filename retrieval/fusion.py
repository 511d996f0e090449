"""CLIPRerank score fusion (docs/methods.md "CLIPRerank").

CLIPRerank rescored a first-stage list: for each of its top-k candidates a fine score S (max over sampled
frames of cos(t, frame), or any frame-evidence score) is fused with the initial score M:

    fused = α · minmax(M) + (1 − α) · minmax(S),   α = DEFAULTS.alpha (0.4, retrieval/params.py) by default,

where both are min-max normalised per query over the rescored top-k (the paper does not say how; this is
our choice, see docs/methods.md). Policies chosen here and relied on by the tests:

- ``minmax`` of a constant list (max == min) is all 0.0, never NaN: a list that does not discriminate adds
  nothing to the fusion. NaN entries are ignored when taking min/max and stay NaN in the output.
- Only the first ``depth`` candidates (input order = first-stage order) are rescored; the rest keep their
  order after them.
- A candidate with a NaN fine score has no frame evidence (e.g. its frames were never indexed). It keeps
  its original rank *slot*: if it was 3rd in the input it is 3rd in the output; the candidates that have
  evidence are sorted by fused score (stable: ties keep input order) into the remaining head slots.
  With α = 1 the fine scores are not used at all, so NaN is irrelevant there.

``rerank`` orders one query's list (search, plug-in rerank); ``rerank_matrix`` a whole [Q, V] gallery
(the testbed's tables), through ``rerank``.
"""

from __future__ import annotations

import numpy as np

from vidseek.retrieval.params import DEFAULTS


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:  # also rejects NaN
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return alpha


def minmax(scores: np.ndarray) -> np.ndarray:
    """Min-max normalise to [0, 1] over the last axis (one query's candidate list, or rows of [Q, K]).

    A constant row maps to 0.0; NaN entries are ignored for min/max and stay NaN; ±inf is rejected.
    """
    s = np.asarray(scores, dtype=np.float64)
    if np.isinf(s).any():
        raise ValueError("minmax: scores contain ±inf")
    if s.size == 0:
        return s.copy()
    present = ~np.isnan(s)
    lo = np.min(np.where(present, s, np.inf), axis=-1, keepdims=True)  # [..., 1]
    hi = np.max(np.where(present, s, -np.inf), axis=-1, keepdims=True)  # [..., 1]
    span = hi - lo  # -inf for all-NaN rows; those rows stay NaN below
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(span > 0, (s - lo) / np.where(span > 0, span, 1.0), 0.0)
    return np.where(present, out, np.nan)


def fuse(initial: np.ndarray, fine: np.ndarray, alpha: float = DEFAULTS.alpha) -> np.ndarray:
    """α · minmax(initial) + (1 − α) · minmax(fine) over one query's top-k [K] (or rows of [Q, K]).

    NaN in ``fine`` gives NaN fused (no evidence) unless α = 1; NaN in ``initial`` is an error.
    """
    alpha = _check_alpha(alpha)
    m = np.asarray(initial, dtype=np.float64)
    s = np.asarray(fine, dtype=np.float64)
    if m.shape != s.shape:
        raise ValueError(f"fuse: initial {m.shape} and fine {s.shape} shapes differ")
    if np.isnan(m).any():
        raise ValueError("fuse: initial scores contain NaN; every candidate needs a first-stage score")
    if alpha == 1.0:
        return minmax(m)
    return alpha * minmax(m) + (1.0 - alpha) * minmax(s)


def rerank(
    initial: np.ndarray, fine: np.ndarray, alpha: float = DEFAULTS.alpha, depth: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """New order of one query's candidates and their fused scores.

    initial, fine: [N] in first-stage order (fine may be NaN = no evidence). Returns ``order`` [N] (indices
    into the input, new rank order) and ``fused`` [N] (input index space; NaN outside the rescored head
    and for candidates without evidence). Min-max normalisation runs over the head only.
    """
    m = np.asarray(initial, dtype=np.float64)
    s = np.asarray(fine, dtype=np.float64)
    if m.ndim != 1 or m.shape != s.shape:
        raise ValueError(f"rerank: need 1-D initial and fine of equal length, got {m.shape} and {s.shape}")
    n = len(m)
    k = n if depth is None else int(depth)
    if k < 0:
        raise ValueError(f"rerank: depth must be >= 0, got {depth}")
    k = min(k, n)
    fused = np.full(n, np.nan)
    fused[:k] = fuse(m[:k], s[:k], alpha)  # [k]
    head = np.arange(k)
    has = ~np.isnan(fused[:k])  # [k] candidates with evidence
    movers = head[has]
    movers = movers[np.argsort(-fused[movers], kind="stable")]  # best fused first, ties keep input order
    new_head = head.copy()
    new_head[has] = movers  # evidence-free candidates keep their slot; movers fill the rest in order
    return np.concatenate([new_head, np.arange(k, n)]), fused


def rerank_matrix(
    first: np.ndarray, fine: np.ndarray, alpha: float = DEFAULTS.alpha, depth: int | None = None
) -> np.ndarray:
    """CLIPRerank of a whole [Q, V] gallery: per query, the top-``depth`` videos by ``first`` reordered by
    ``rerank``; returns scores [Q, V] whose descending order is that ranking (no ties), for rank metrics."""
    first, fine = np.asarray(first, dtype=np.float64), np.asarray(fine, dtype=np.float64)
    if first.ndim != 2 or first.shape != fine.shape:
        raise ValueError(f"rerank_matrix: need two [Q, V] matrices of one shape, got {first.shape} and {fine.shape}")
    n = first.shape[1]
    out = np.empty_like(first)
    for i in range(first.shape[0]):
        by_first = np.argsort(-first[i], kind="stable")  # [V] video indices, best first
        order, _ = rerank(first[i, by_first], fine[i, by_first], alpha, depth)
        out[i, by_first[order]] = np.arange(n, 0, -1)  # [V] the new first place gets the highest score
    return out
