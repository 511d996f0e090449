"""CLIP4Clip temporal heads (Luo et al., 2021), as in the official code (docs/methods.md).

``seqTransf``:

frames F [B, T, D] + frame position embeddings P (init: CLIP *text* positional embedding, 77 rows)
-> 4 pre-LN CLIP residual blocks (init: CLIP text blocks 0-3), no causal mask, padded frames masked as keys
with an additive -1e6, no dropout, no final LayerNorm -> + F (residual to the original features)
-> meanP (normalise, masked mean, normalise) -> video vector [B, D].

``seqLSTM``: a 1-layer unidirectional LSTM (hidden = D) over the frames, + F (residual), then meanP. The
official code packs the sequences by length; a forward LSTM is causal, so running it on the zero-padded
batch gives the same outputs on real frames as long as padding comes *after* them (``pad_frames`` layout);
padded positions are zeroed like ``pad_packed_sequence`` does.

Checkpoints, model-stamp checks and per-video vectors for the index writer: ``vidseek.operators.heads``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from open_clip.transformer import QuickGELU, ResidualAttentionBlock

from vidseek.operators.aggregate import mean_pool

MASK_VALUE = -1e6  # CLIP4Clip's additive key mask


class SeqTransfHead(nn.Module):
    def __init__(
        self, width: int, layers: int = 4, heads: int | None = None, max_frames: int = 77, quick_gelu: bool = False
    ):
        super().__init__()
        self.width = width
        self.heads = heads or max(1, width // 64)
        self.frame_position_embeddings = nn.Embedding(max_frames, width)
        act = QuickGELU if quick_gelu else nn.GELU
        self.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, self.heads, act_layer=act, batch_first=True) for _ in range(layers)]
        )

    @classmethod
    def from_clip_text(cls, clip_model: nn.Module, layers: int = 4) -> "SeqTransfHead":
        """Initialise from a CLIP text tower: positional embedding rows and blocks 0..layers-1."""
        pos = clip_model.positional_embedding.detach()  # [ctx, width]
        blocks = clip_model.transformer.resblocks
        width = pos.shape[1]
        out_dim = int(clip_model.text_projection.shape[1])
        if width != out_dim:
            raise ValueError(
                f"text width {width} != embedding dim {out_dim}: CLIP4Clip init from the text tower needs them "
                "equal (true for ViT-B/32); build SeqTransfHead(width=embed_dim) for random init instead"
            )
        if len(blocks) < layers:
            raise ValueError(f"text tower has {len(blocks)} blocks, seqTransf needs {layers}")
        head = cls(width, layers=0, heads=blocks[0].attn.num_heads, max_frames=77)
        head.resblocks = nn.ModuleList([copy.deepcopy(blocks[i]) for i in range(layers)]).float()
        with torch.no_grad():
            n = min(77, pos.shape[0])
            head.frame_position_embeddings.weight[:n] = pos[:n].float()
        head.requires_grad_(True)
        return head

    def contextualise(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Frames [B, T, D], mask [B, T] (1 = real) -> transformed frames [B, T, D] (before pooling)."""
        b, t, _ = frames.shape
        if t > self.frame_position_embeddings.num_embeddings:
            raise ValueError(f"{t} frames exceed the head's {self.frame_position_embeddings.num_embeddings}")
        pos = self.frame_position_embeddings(torch.arange(t, device=frames.device))  # [T, D]
        x = frames + pos.unsqueeze(0)
        key_mask = (1.0 - mask.to(frames.dtype)).unsqueeze(1) * MASK_VALUE  # [B, 1, T]
        attn_mask = key_mask.expand(b, t, t).repeat_interleave(self.heads, dim=0)  # [B*heads, T, T]
        for block in self.resblocks:
            x = block(x, attn_mask=attn_mask)
        return x + frames  # residual to the original features

    def forward(self, frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Video vectors [B, D], unit norm."""
        if mask is None:
            mask = torch.ones(frames.shape[:2], device=frames.device)
        return mean_pool(self.contextualise(frames, mask), mask)


class SeqLSTMHead(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.width = width
        self.lstm = nn.LSTM(input_size=width, hidden_size=width, num_layers=1, batch_first=True)

    def contextualise(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Frames [B, T, D], mask [B, T] (1 = real, real frames first) -> [B, T, D] before pooling."""
        out, _ = self.lstm(frames)
        return out * mask.to(frames.dtype).unsqueeze(-1) + frames  # residual to the original features

    def forward(self, frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Video vectors [B, D], unit norm."""
        if mask is None:
            mask = torch.ones(frames.shape[:2], device=frames.device)
        return mean_pool(self.contextualise(frames, mask), mask)


def uniform_frame_indices(n: int, k: int) -> list[int]:
    """Indices of k frames at the midpoints of k equal chunks of n frames (all frames when n <= k)."""
    if n <= k:
        return list(range(n))
    return [min(n - 1, int((i + 0.5) * n / k)) for i in range(k)]


def normalize(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1, eps=1e-8)
