"""The one-pass scorer (operators/frame_scoring.py) against the aggregators it replaces in search."""

import numpy as np
import pytest
import torch

from vidseek.operators.aggregate import frame_similarities, get_scorer, pad_frames
from vidseek.operators.frame_scoring import score_candidates


def _candidates(thinned: bool):
    """Ragged videos (1–40 rows, raw vectors of varied norm), optionally thinned (rows standing for 1–4 frames)."""
    rng = np.random.default_rng(3)
    lens = rng.integers(1, 41, 25)
    per = [rng.standard_normal((n, 32)).astype(np.float32) * rng.uniform(0.2, 5.0, (n, 1)) for n in lens]
    merged = [rng.integers(1, 5, n).astype(np.float32) for n in lens] if thinned else None
    frames, mask = pad_frames(per, 32, merged)
    queries = torch.from_numpy(rng.standard_normal((3, 32)).astype(np.float32))
    return queries, frames, mask


@pytest.mark.parametrize("thinned", [False, True])
@pytest.mark.parametrize("aggregation", ["mean", "max", "query-weighted"])
@pytest.mark.parametrize("tau", [0.01, 0.1, 10.0])
def test_one_pass_matches_the_aggregators(aggregation, thinned, tau):
    q, frames, mask = _candidates(thinned)
    sims, score = score_candidates(q, frames, mask, aggregation, tau)
    kw = {"tau": tau} if aggregation == "query-weighted" else {}
    ref_sims = frame_similarities(q, frames, mask)
    ref_score = get_scorer(aggregation)(q, frames, mask, **kw)
    assert sims.shape == ref_sims.shape and score.shape == ref_score.shape == (3, 25)
    assert torch.allclose(sims, ref_sims, atol=1e-6, rtol=0)
    # float32 rounding, both ways: at τ 0.01 the aggregators' own score is ~9e-7 from a float64 one
    assert torch.allclose(score, ref_score, atol=2e-6, rtol=0)
    # the two orders agree too: what the rerank and the ranking read
    assert (score.argsort(-1, descending=True) == ref_score.argsort(-1, descending=True)).float().mean() > 0.95


def test_one_pass_refuses_what_it_cannot_score():
    q, frames, mask = _candidates(False)
    with pytest.raises(ValueError, match="tau must be > 0"):
        score_candidates(q, frames, mask, "query-weighted", 0.0)
    with pytest.raises(ValueError, match="unknown aggregation"):
        score_candidates(q, frames, mask, "median")
    with pytest.raises(ValueError, match="unknown aggregation"):
        score_candidates(q, frames, mask, "learned")  # stored vectors, not frames: search scores it apart
