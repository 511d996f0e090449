"""One similarity pass over the candidates' frames: what search needs from them, each product computed once.

Search wants, per (query, candidate), the frame similarities (max pooling for the rerank and the moments) and
the aggregation's score. Calling ``frame_similarities`` and then a scorer from operators/aggregate.py
normalises every frame twice (a copy of [V, T, D] each time) and computes q·F twice. Here the frame norms
are taken once and every aggregator reads them:

- sims = (q̂·F_k) / ‖F_k‖ (the same cos(q, F_k) as ``frame_similarities``);
- ``mean``: Σ_k m_k F_k/‖F_k‖ with per-frame scale folded into one weighted sum (no normalised copy);
- ``query-weighted``: q̂·u = Σ_k w_k (q̂·F_k), so only ‖u‖ needs u itself.

Same definitions as operators/aggregate.py (docs/methods.md); tests/test_frame_scoring.py holds the two to
2e-6 (float32 rounding). The saving grows with frames per candidate (bench/RESULTS.md, "one similarity pass").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vidseek.operators.aggregate import EPS, NEG, get_scorer


def score_candidates(
    queries: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor, aggregation: str, tau: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sims [Q, V, T] with NEG on padding, score [Q, V]) for queries [Q, D], raw frames [V, T, D], mask [V, T]."""
    get_scorer(aggregation)  # an unknown name ("learned" too: it reads stored vectors) fails with its message
    if aggregation == "query-weighted" and tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    q = F.normalize(queries, dim=-1, eps=EPS)  # [Q, D]
    inv_norm = 1.0 / torch.linalg.vector_norm(frames, dim=-1).clamp_min(EPS)  # [V, T]
    weights = mask.to(frames.dtype)  # frames each row stands for; 0 = padding
    keep = weights > 0
    dots = torch.einsum("qd,vtd->qvt", q, frames)  # [Q, V, T] q̂·F_k, raw frames
    sims = (dots * inv_norm).masked_fill(~keep, NEG)
    if aggregation == "max":
        return sims, sims.amax(-1)
    if aggregation == "mean":
        pooled = torch.einsum("vt,vtd->vd", weights * inv_norm, frames)  # Σ m_k F_k/‖F_k‖
        pooled = pooled / weights.sum(1, keepdim=True).clamp_min(1.0)  # [V, D]
        return sims, q @ F.normalize(pooled, dim=-1, eps=EPS).T
    # query-weighted: softmax over s/τ + log m (a row of m frames weighs as m copies), renormalised
    w = torch.softmax(sims / tau + weights.clamp_min(1.0).log(), dim=-1) * keep  # [Q, V, T]
    w = w / w.sum(-1, keepdim=True).clamp_min(EPS)
    u_norm = torch.linalg.vector_norm(torch.einsum("qvt,vtd->qvd", w, frames), dim=-1)  # [Q, V] ‖Σ w_k F_k‖
    return sims, (w * dots).sum(-1) / u_norm.clamp_min(EPS)
