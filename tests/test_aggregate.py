"""Aggregators (docs/methods.md) against small independent numpy references."""

import numpy as np
import pytest
import torch

from vidseek.operators.aggregate import (
    get_pooler,
    get_scorer,
    list_aggregators,
    max_score,
    mean_pool,
    mean_score,
    pad_frames,
    query_weighted_score,
    query_weighted_weights,
)

D = 16


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def ref_mean_pool(frames):  # one video, real frames only [T, D]
    return unit(unit(frames).mean(0))


def ref_max(q, frames):
    return (unit(frames) @ unit(q)).max()


def ref_query_weighted(q, frames, tau):
    s = unit(frames) @ unit(q)
    w = np.exp((s - s.max()) / tau)
    w /= w.sum()
    u = (w[:, None] * frames).sum(0)  # raw frames
    return float(unit(u) @ unit(q))


@pytest.fixture
def data():
    """3 queries, 4 videos of 5, 2, 7, 1 frames (raw, varied norms), padded with garbage."""
    rng = np.random.default_rng(0)
    lengths = [5, 2, 7, 1]
    per_video = [rng.normal(size=(n, D)) * rng.uniform(0.5, 3.0, size=(n, 1)) for n in lengths]
    frames, mask = pad_frames(per_video, D)
    garbage = frames.clone()
    garbage[~mask] = torch.from_numpy(rng.normal(size=(int((~mask).sum()), D)) * 50).float()
    return rng.normal(size=(3, D)), per_video, frames, mask, garbage


def test_pad_frames(data):
    _, per_video, frames, mask, _ = data
    assert frames.shape == (4, 7, D) and mask.sum(1).tolist() == [5, 2, 7, 1]
    assert np.allclose(frames[1, :2].numpy(), per_video[1]) and not frames[1, 2:].any()


def test_mean_pool_matches_reference(data):
    _, per_video, frames, mask, garbage = data
    pooled = mean_pool(frames, mask).numpy()
    ref = np.stack([ref_mean_pool(f) for f in per_video])
    assert pooled.shape == (4, D) and np.allclose(pooled, ref, atol=1e-5)
    assert np.allclose(mean_pool(garbage, mask).numpy(), ref, atol=1e-5)  # padding ignored
    naive = unit(np.stack([f.mean(0) for f in per_video]))  # Hitchhiker's raw-mean variant differs
    assert not np.allclose(pooled, naive, atol=1e-3)


def test_scores_match_references(data):
    q, per_video, frames, mask, garbage = data
    ref_mean = np.array([[ref_mean_pool(f) @ unit(qi) for f in per_video] for qi in q])
    ref_mx = np.array([[ref_max(qi, f) for f in per_video] for qi in q])
    ref_qw = np.array([[ref_query_weighted(qi, f, 0.1) for f in per_video] for qi in q])
    for fr in (frames, garbage):  # padded frames' content must not matter
        assert mean_score(q, fr, mask).shape == (3, 4)
        assert np.allclose(mean_score(q, fr, mask).numpy(), ref_mean, atol=1e-5)
        assert np.allclose(max_score(q, fr, mask).numpy(), ref_mx, atol=1e-5)
        assert np.allclose(query_weighted_score(q, fr, mask, tau=0.1).numpy(), ref_qw, atol=1e-5)


def test_query_weighted_limits(data):
    """tau -> 0: cos(q, the best frame) = max score; tau -> inf: cos(q, mean of raw frames)."""
    q, per_video, frames, mask, _ = data
    small = query_weighted_score(q, frames, mask, tau=1e-4).numpy()
    assert np.allclose(small, max_score(q, frames, mask).numpy(), atol=1e-5)
    big = query_weighted_score(q, frames, mask, tau=1e6).numpy()
    raw_mean = np.array([[unit(f.mean(0)) @ unit(qi) for f in per_video] for qi in q])
    assert np.allclose(big, raw_mean, atol=1e-5)
    assert not np.allclose(big, mean_score(q, frames, mask).numpy(), atol=1e-3)  # not meanP (unit frames)


def test_query_weighted_weights(data):
    q, _, frames, mask, garbage = data
    for tau in (0.1, 1e4):  # large tau: NEG / tau is no longer "minus infinity"
        w = query_weighted_weights(q, garbage, mask, tau=tau)
        assert w.shape == (3, 4, 7) and torch.allclose(w.sum(-1), torch.ones(3, 4), atol=1e-6)
        assert not w[:, ~mask].any()  # zero weight on padded frames even when they are huge
    with pytest.raises(ValueError, match="tau"):
        query_weighted_score(q, frames, mask, tau=0.0)
    with pytest.raises(ValueError, match="tau"):
        query_weighted_weights(q, frames, mask, tau=-1.0)


def test_vectorised_equals_per_video_loop():
    rng = np.random.default_rng(1)
    per_video = [rng.normal(size=(rng.integers(1, 20), D)) for _ in range(20)]
    q = rng.normal(size=(5, D))
    frames, mask = pad_frames(per_video, D)
    for name in list_aggregators():
        score = get_scorer(name)
        batch = score(q, frames, mask).numpy()
        loop = np.stack([score(q, torch.tensor(f[None], dtype=torch.float32)).numpy()[:, 0] for f in per_video], 1)
        assert batch.shape == (5, 20) and np.allclose(batch, loop, atol=1e-5), name


def test_registry():
    assert {"mean", "max", "query-weighted"} <= set(list_aggregators())
    assert get_pooler("mean") is mean_pool and get_pooler("max") is None
    with pytest.raises(ValueError, match="unknown aggregation 'median'"):
        get_scorer("median")


def test_mask_none_means_all_frames(data):
    q, per_video, *_ = data
    f = torch.tensor(per_video[0][None], dtype=torch.float32)
    assert torch.allclose(max_score(q, f), max_score(q, f, torch.ones(1, 5, dtype=torch.bool)))
    assert np.allclose(mean_pool(f).numpy()[0], ref_mean_pool(per_video[0]), atol=1e-5)
