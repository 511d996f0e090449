"""The trimmed text tower gives open_clip's own text features, for every model family the registry serves."""

import pytest
import torch

from vidseek.operators.encode import load_clip, tokenize
from vidseek.operators.text_encode import can_trim, encode_text

TEXTS = [
    "a red circle",
    "a small blue square moves left then a green triangle appears",
    "x",
    "a " * 40 + "dog",
]  # lengths from 3 tokens to near the context


@pytest.mark.parametrize("name", ["tiny-random", "testbed", "ViT-B-32"])
def test_trimmed_text_tower_equals_open_clip(name):
    torch.manual_seed(0)
    clip = load_clip(name, "none" if name == "ViT-B-32" else None, device="cpu")
    assert can_trim(clip.model), "the registry's CLIP models should take the trimmed path"
    tokens, _ = tokenize(clip, TEXTS)
    with torch.inference_mode():
        full = clip.model.encode_text(tokens)  # [B, D] over the whole padded context
    trimmed = encode_text(clip.model, tokens)
    assert trimmed.shape == full.shape
    torch.testing.assert_close(trimmed, full, atol=2e-5, rtol=1e-4)
    # and one short query alone (trimmed to a handful of tokens) matches its row of the padded batch
    torch.testing.assert_close(encode_text(clip.model, tokens[:1]), full[:1], atol=2e-5, rtol=1e-4)


def test_untrimmable_model_uses_open_clips_path():
    class Plain(torch.nn.Module):
        def encode_text(self, tokens):
            return tokens.float() * 2

    tokens = torch.tensor([[1, 5, 0]])
    assert not can_trim(Plain())
    assert torch.equal(encode_text(Plain(), tokens), tokens.float() * 2)
