"""Temporal aggregators behind one interface (docs/methods.md).

Notation: queries q [Q, D], frames F [V, T, D] (raw CLIP image features, zero-padded), mask m [V, T].
The mask is a weight per row: 0 for padding, else how many sampled frames the row stands for (1, or more in
a thinned store, operators/thinning.py); a bool mask is weights 0/1. Weights enter as repeats would: meanP
averages over frames, query weighting adds log w to the softmax logits, max ignores them. So a row of w exact
duplicates scores as the w frames did.
Every aggregator scores (query, video) pairs: ``score(q, F, m) -> [Q, V]`` cosine-like scores.
Query-independent aggregators also ``pool(F, m) -> [V, D]`` so their vectors can be stored and searched.

- ``mean``: CLIP4Clip meanP — L2-normalise each frame, masked mean, L2-normalise. (CLIP-Hitchhiker's
  baseline averages *raw* frames first; that is ``query-weighted`` with τ → ∞.)
- ``max``: max over frames of cos(q, F_k).
- ``query-weighted``: CLIP-Hitchhiker query scoring, training-free: s_k = cos(q, F_k),
  w = softmax_k(s_k / τ), u = Σ_k w_k F_k over raw frames, score = cos(q, u). τ = 0.1 by default.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

EPS = 1e-8
NEG = -1e4  # finite "minus infinity": keeps softmax/max of all-masked rows NaN-free


def _as_tensor(x, dtype=torch.float32) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=dtype)


def _mask(frames: torch.Tensor, mask) -> torch.Tensor:
    if mask is None:
        return torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device)
    return _as_tensor(mask).to(device=frames.device) > 0


def _weights(frames: torch.Tensor, mask) -> torch.Tensor:
    """Frames each row stands for [V, T] (float; 0 on padding)."""
    if mask is None:
        return torch.ones(frames.shape[:2], dtype=frames.dtype, device=frames.device)
    return _as_tensor(mask).to(device=frames.device, dtype=frames.dtype)


def mean_pool(frames, mask=None) -> torch.Tensor:
    """CLIP4Clip meanP video vectors [V, D] (unit norm) from frames [V, T, D]."""
    frames = _as_tensor(frames)
    m = _weights(frames, mask).unsqueeze(-1)  # [V, T, 1]
    unit = F.normalize(frames, dim=-1, eps=EPS) * m
    pooled = unit.sum(1) / m.sum(1).clamp_min(1.0)  # [V, D]
    return F.normalize(pooled, dim=-1, eps=EPS)


def frame_similarities(queries, frames, mask=None) -> torch.Tensor:
    """cos(q, F_k) for all queries, videos, frames: [Q, V, T]; padded frames get NEG."""
    q = F.normalize(_as_tensor(queries), dim=-1, eps=EPS)  # [Q, D]
    frames = _as_tensor(frames)
    f = F.normalize(frames, dim=-1, eps=EPS)  # [V, T, D]
    sims = torch.einsum("qd,vtd->qvt", q, f)
    return sims.masked_fill(~_mask(frames, mask).unsqueeze(0), NEG)


def mean_score(queries, frames, mask=None) -> torch.Tensor:
    q = F.normalize(_as_tensor(queries), dim=-1, eps=EPS)
    return q @ mean_pool(frames, mask).T  # [Q, V]


def max_score(queries, frames, mask=None) -> torch.Tensor:
    return frame_similarities(queries, frames, mask).amax(-1)  # [Q, V]


def query_weighted_weights(queries, frames, mask=None, tau: float = 0.1) -> torch.Tensor:
    """Softmax weights over frames [Q, V, T] (zero on padded frames)."""
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    frames = _as_tensor(frames)
    sims = frame_similarities(queries, frames, mask)
    # a row standing for n frames weighs as n copies: softmax over s/τ + log n (0 for unthinned rows)
    log_n = _weights(frames, mask).clamp_min(1.0).log().unsqueeze(0)  # [1, V, T]
    w = torch.softmax(sims / tau + log_n, dim=-1) * _mask(frames, mask).unsqueeze(0)
    return w / w.sum(-1, keepdim=True).clamp_min(EPS)  # NEG / large tau is no longer -inf: renormalise


def query_weighted_score(queries, frames, mask=None, tau: float = 0.1) -> torch.Tensor:
    """CLIP-Hitchhiker score [Q, V]: cos(q, Σ_k softmax(s/τ)_k F_k) with raw F_k."""
    frames = _as_tensor(frames)
    w = query_weighted_weights(queries, frames, mask, tau)  # [Q, V, T]
    u = torch.einsum("qvt,vtd->qvd", w, frames)  # [Q, V, D] raw weighted sum
    q = F.normalize(_as_tensor(queries), dim=-1, eps=EPS)
    return torch.einsum("qd,qvd->qv", q, F.normalize(u, dim=-1, eps=EPS))


ScoreFn = Callable[..., torch.Tensor]
_SCORERS: dict[str, ScoreFn] = {
    "mean": mean_score,
    "max": max_score,
    "query-weighted": query_weighted_score,
}
_POOLERS: dict[str, Callable[..., torch.Tensor]] = {"mean": mean_pool}


def list_aggregators() -> list[str]:
    return sorted(_SCORERS)


def get_scorer(name: str) -> ScoreFn:
    try:
        return _SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown aggregation {name!r}; choose from {list_aggregators()}") from None


def get_pooler(name: str) -> Callable[..., torch.Tensor] | None:
    """The storable video-vector function for query-independent aggregators, else None."""
    return _POOLERS.get(name)


def pad_frames(per_video: list, dim: int, weights: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """List of [T_i, D] arrays -> zero-padded frames [V, T_max, D] and mask [V, T_max].

    ``weights``: per video, the frames each row stands for [T_i] (a thinned store's ``merged``); the mask is
    then those weights (float), else bool."""
    t_max = max((len(x) for x in per_video), default=0) or 1
    frames = torch.zeros(len(per_video), t_max, dim)
    mask = torch.zeros(len(per_video), t_max, dtype=torch.bool if weights is None else torch.float32)
    for i, x in enumerate(per_video):
        if len(x):
            frames[i, : len(x)] = _as_tensor(x)
            mask[i, : len(x)] = True if weights is None else _as_tensor(weights[i])
    return frames, mask
