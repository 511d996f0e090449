"""Symmetric InfoNCE, the one contrastive loss of vidseek (docs/methods.md "CLIP4Clip seqTransf").

Mean of the cross-entropies over the rows (a→b) and the columns (b→a) of ``scale · a·bᵀ``, pair i the
positive of row i and column i. With ``keys``, pairs that share a key are either all positives (soft
targets spread evenly over them: the testbed CLIP, where captions of the same objects are interchangeable)
or ignored, neither positive nor negative (head training, where one video's several captions in a batch
must not push each other away).
"""

from __future__ import annotations

import torch


def symmetric_infonce(
    a: torch.Tensor,
    b: torch.Tensor,
    scale: float | torch.Tensor,
    keys: torch.Tensor | None = None,
    same_key: str = "positive",
) -> torch.Tensor:
    """Loss over unit vectors a [B, D] and b [B, D]; ``keys`` [B] ints, ``same_key`` positive | ignored."""
    if same_key not in ("positive", "ignored"):
        raise ValueError(f"same_key must be 'positive' or 'ignored', got {same_key!r}")
    logits = scale * a @ b.T  # [B a, B b]
    eye = torch.eye(len(a), dtype=torch.bool, device=a.device)
    same = eye if keys is None else keys[:, None] == keys[None, :]  # [B, B]
    if same_key == "ignored":
        logits = logits.masked_fill(same & ~eye, float("-inf"))
        target = eye
    else:
        target = same
    target = target.float()

    def ce(log_p: torch.Tensor, t: torch.Tensor, dim: int) -> torch.Tensor:
        t = t / t.sum(dim, keepdim=True)
        return -torch.where(t > 0, t * log_p, torch.zeros_like(log_p)).sum(dim).mean()

    return (ce(logits.log_softmax(1), target, 1) + ce(logits.log_softmax(0), target, 0)) / 2
