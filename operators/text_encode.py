"""CLIP text tower on the tokens that matter: exact, and several times faster for short queries.

open_clip pads every query to the full context (77 tokens) and runs the text transformer over all of it.
CLIP's text attention is causal and its embedding is read at the end-of-text token, so the positions after
the longest query's EOT cannot change any output: running the tower on the first ``max(EOT) + 1`` tokens,
with the positional embedding and causal mask cut to match, gives the same vectors (up to float rounding).
A 10-token query then costs ~10/77 of the transformer, which is what makes text encoding a small part of
a search on a CPU.

Models this does not provably hold for (non-causal or HF text towers, other pooling) take open_clip's own
``encode_text``.
"""

from __future__ import annotations

import torch
from open_clip.model import CLIP, text_global_pool


def can_trim(model: torch.nn.Module) -> bool:
    """True for open_clip's built-in CLIP text tower with a causal mask and EOT pooling."""
    return (
        isinstance(model, CLIP)
        and getattr(model, "attn_mask", None) is not None
        and getattr(model, "text_pool_type", "argmax") in ("argmax", "eos")
    )


def eot_positions(model: CLIP, tokens: torch.Tensor) -> torch.Tensor:
    """Index of each row's pooled (end-of-text) token, exactly as ``text_global_pool`` picks it."""
    if model.text_pool_type == "eos":
        return (tokens == model.text_eos_id).int().argmax(dim=-1)
    return tokens.argmax(dim=-1)


@torch.inference_mode()
def encode_text(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Raw text features [B, D] for token ids [B, ctx]; same result as ``model.encode_text(tokens)``."""
    if not can_trim(model) or not len(tokens):
        return model.encode_text(tokens)
    n = int(eot_positions(model, tokens).max()) + 1
    tokens = tokens[:, :n]  # [B, n]: nothing after the last EOT reaches a pooled position
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:n].to(cast_dtype)  # [B, n, W]
    x = model.transformer(x, attn_mask=model.attn_mask[:n, :n])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    if isinstance(model.text_projection, torch.nn.Linear):
        return model.text_projection(x)
    return x if model.text_projection is None else x @ model.text_projection
