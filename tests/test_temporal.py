"""CLIP4Clip seqTransf head: init from the CLIP text tower, residual, key masking, reference forward."""

import math

import pytest
import torch
import torch.nn.functional as F

from vidseek.operators.aggregate import mean_pool
from vidseek.operators.temporal import MASK_VALUE, SeqTransfHead, uniform_frame_indices


@pytest.fixture(scope="module")
def head(tiny_clip):
    return SeqTransfHead.from_clip_text(tiny_clip.model).eval()


@pytest.fixture(scope="module")
def batch():
    """3 videos of 6, 4 and 1 real frames (T = 6), padding filled with zeros."""
    g = torch.Generator().manual_seed(0)
    frames = torch.randn(3, 6, 64, generator=g)
    mask = torch.zeros(3, 6)
    for i, n in enumerate([6, 4, 1]):
        mask[i, :n] = 1
    return frames * mask[..., None], mask


def test_init_copies_text_blocks_and_positions(head, tiny_clip):
    text = tiny_clip.model
    assert len(head.resblocks) == 4 and head.heads == text.transformer.resblocks[0].attn.num_heads == 2
    for i in range(4):
        ours, theirs = head.resblocks[i].state_dict(), text.transformer.resblocks[i].state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
        assert head.resblocks[i] is not text.transformer.resblocks[i]  # a copy, not shared
    ctx = text.positional_embedding.shape[0]  # 32 for tiny-random; rows beyond stay random
    assert head.frame_position_embeddings.weight.shape == (77, 64)
    assert torch.equal(head.frame_position_embeddings.weight[:ctx], text.positional_embedding)
    assert all(p.requires_grad for p in head.parameters())
    assert not any(p.requires_grad for p in text.parameters())  # the CLIP model itself stays frozen


def test_output_unit_norm(head, batch):
    frames, mask = batch
    out = head(frames, mask)
    assert out.shape == (3, 64) and torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_residual_to_original_features(head, batch):
    """contextualise(F) - F equals the blocks run on F + P (the residual adds the *original* F)."""
    frames, mask = batch
    x = frames + head.frame_position_embeddings.weight[:6]
    am = ((1 - mask) * MASK_VALUE)[:, None, :].expand(3, 6, 6).repeat_interleave(head.heads, 0)
    for blk in head.resblocks:
        x = blk(x, attn_mask=am)
    with torch.no_grad():
        assert torch.allclose(head.contextualise(frames, mask) - frames, x, atol=1e-5)


def test_identity_blocks_give_two_f_plus_p(head, batch):
    """With attention and MLP outputs zeroed the blocks are identities: output = (F + P) + F."""
    frames, mask = batch
    h = SeqTransfHead(64, layers=4, heads=2)
    h.load_state_dict(head.state_dict())
    with torch.no_grad():
        for blk in h.resblocks:
            for lin in (blk.attn.out_proj, blk.mlp.c_proj):
                lin.weight.zero_()
                lin.bias.zero_()
        out = h.contextualise(frames, mask)
    assert torch.allclose(out, 2 * frames + h.frame_position_embeddings.weight[:6], atol=1e-6)


def test_padded_frames_do_not_matter(head, batch):
    frames, mask = batch
    junk = frames + 100 * torch.randn(frames.shape, generator=torch.Generator().manual_seed(1)) * (1 - mask)[..., None]
    with torch.no_grad():
        a, b = head(frames, mask), head(junk, mask)
        alone = head(frames[2:, :1], mask[2:, :1])  # the 1-frame video without any padding
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a[2:], alone, atol=1e-5)
    assert not torch.allclose(a[0], head(frames[:1, :3], mask[:1, :3])[0], atol=1e-3)  # real frames do


def reference_forward(head, frames, mask):
    """seqTransf in plain torch ops: pre-LN blocks, own multi-head attention, -1e6 key mask, GELU MLP."""
    b, t, d = frames.shape
    nh, dh = head.heads, d // head.heads
    x = frames + head.frame_position_embeddings.weight[:t]
    bias = ((1 - mask) * -1e6)[:, None, None, :]  # [B, 1, 1, T] on keys
    for blk in head.resblocks:
        a = blk.attn
        y = F.layer_norm(x, (d,), blk.ln_1.weight, blk.ln_1.bias, blk.ln_1.eps)
        q, k, v = (y @ a.in_proj_weight.T + a.in_proj_bias).split(d, dim=-1)
        q, k, v = (z.reshape(b, t, nh, dh).transpose(1, 2) for z in (q, k, v))  # [B, H, T, dh]
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + bias, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + y @ a.out_proj.weight.T + a.out_proj.bias
        y = F.layer_norm(x, (d,), blk.ln_2.weight, blk.ln_2.bias, blk.ln_2.eps)
        y = F.gelu(y @ blk.mlp.c_fc.weight.T + blk.mlp.c_fc.bias)
        x = x + y @ blk.mlp.c_proj.weight.T + blk.mlp.c_proj.bias
    out = x + frames
    m = mask[..., None]
    pooled = (F.normalize(out, dim=-1) * m).sum(1) / m.sum(1)
    return F.normalize(pooled, dim=-1)


def test_matches_reference_forward(head, batch):
    frames, mask = batch
    assert isinstance(head.resblocks[0].mlp.gelu, torch.nn.GELU)  # open_clip text tower: exact GELU
    with torch.no_grad():
        assert torch.allclose(head(frames, mask), reference_forward(head, frames, mask), atol=1e-5)
        assert torch.allclose(head(frames, mask), mean_pool(head.contextualise(frames, mask), mask), atol=1e-6)


def test_too_many_frames_and_bad_widths(head, tiny_clip):
    with pytest.raises(ValueError, match="exceed"):
        head(torch.zeros(1, 78, 64))
    with pytest.raises(ValueError, match="needs 8"):
        SeqTransfHead.from_clip_text(tiny_clip.model, layers=8)


def test_uniform_frame_indices():
    assert uniform_frame_indices(5, 12) == [0, 1, 2, 3, 4]
    assert uniform_frame_indices(120, 4) == [15, 45, 75, 105]  # chunk midpoints
