"""The one contrastive loss against independent references: plain CE, soft multi-positive targets, masking."""

import pytest
import torch
import torch.nn.functional as F

from vidseek.operators.contrastive import symmetric_infonce


def _unit(*shape):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(0)), dim=-1)


def test_no_keys_is_the_mean_of_row_and_column_cross_entropy():
    a, b = _unit(6, 8), _unit(6, 8).flip(0)
    logits = 20.0 * a @ b.T
    t = torch.arange(6)
    ref = (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2
    assert torch.allclose(symmetric_infonce(a, b, 20.0), ref)


def test_shared_keys_as_positives_spread_the_target():
    a, b = _unit(4, 8), _unit(4, 8).roll(1, 0)
    keys = torch.tensor([0, 0, 1, 2])
    logits = 10.0 * a @ b.T
    pos = (keys[:, None] == keys[None, :]).float()
    ref = (
        -(pos / pos.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
        - (pos / pos.sum(0, keepdim=True) * logits.log_softmax(0)).sum(0).mean()
    ) / 2
    assert torch.allclose(symmetric_infonce(a, b, 10.0, keys, "positive"), ref)


def test_shared_keys_ignored_are_neither_positive_nor_negative():
    a, b = _unit(4, 8), _unit(4, 8)
    keys = torch.tensor([0, 0, 1, 2])
    logits = (10.0 * a @ b.T).masked_fill(
        torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0], [0] * 4, [0] * 4]).bool(), float("-inf")
    )
    t = torch.arange(4)
    ref = (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2
    got = symmetric_infonce(a, b, 10.0, keys, "ignored")
    assert torch.isfinite(got) and torch.allclose(got, ref)
    with pytest.raises(ValueError, match="same_key"):
        symmetric_infonce(a, b, 10.0, keys, "both")
