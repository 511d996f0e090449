"""Search's client-side frame scoring: two passes (similarities, then the aggregator) against one pass.

Times what ``Searcher.search_vectors`` does with the candidates' frames after they arrive, on synthetic raw
vectors: padding ([V, T, D]), the frame similarities (max pooling, moments) and the aggregation's score —
before, ``frame_similarities`` then the scorer of operators/aggregate.py (every frame normalised twice, q·F
twice); now ``score_candidates`` (operators/frame_scoring.py). Both at 1× and 3× frames per candidate, in one
run, rounds interleaved (ABAB) so drift hits both; prints p50 ms and the ratios.

    python bench/one_pass_scoring.py [--videos 150] [--frames 30] [--dim 512] [--rounds 40]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vidseek.operators.aggregate import frame_similarities, get_scorer, pad_frames
from vidseek.operators.frame_scoring import score_candidates


def two_pass(q, frames, mask, aggregation):
    sims = frame_similarities(q, frames, mask)
    kw = {"tau": 0.1} if aggregation == "query-weighted" else {}
    return sims, get_scorer(aggregation)(q, frames, mask, **kw)


def one_pass(q, frames, mask, aggregation):
    return score_candidates(q, frames, mask, aggregation, 0.1)


def time_round(fn, q, per_video, merged, dim, aggregation) -> float:
    t0 = time.perf_counter()
    frames, mask = pad_frames(per_video, dim, merged)  # [V, T, D], [V, T]: what search does first
    sims, score = fn(q, frames, mask, aggregation)
    sims.numpy().max(-1), score.numpy()
    return (time.perf_counter() - t0) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=150, help="candidates per query (depth 100 ∪ frame-level ones)")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    q = torch.from_numpy(rng.standard_normal((1, args.dim)).astype(np.float32))
    print(f"torch threads {torch.get_num_threads()}, {args.videos} candidates, D {args.dim}, {args.rounds} rounds")
    print(f"{'aggregation':<16}{'frames':>7}{'two-pass p50':>14}{'one-pass p50':>14}{'one ÷ two':>11}")
    p50 = {}
    for aggregation in ("query-weighted", "mean", "max"):
        for scale in (1, 3):
            t = args.frames * scale
            per_video = [rng.standard_normal((t, args.dim)).astype(np.float32) for _ in range(args.videos)]
            merged = [np.ones(t, np.float32) for _ in range(args.videos)]
            times = {"two": [], "one": []}
            for r in range(args.rounds):
                order = (("two", two_pass), ("one", one_pass)) if r % 2 == 0 else (("one", one_pass), ("two", two_pass))
                for name, fn in order:
                    times[name].append(time_round(fn, q, per_video, merged, args.dim, aggregation))
            two, one = (float(np.median(times[k])) for k in ("two", "one"))
            p50[aggregation, scale] = (two, one)
            print(f"{aggregation:<16}{t:>7}{two:>14.2f}{one:>14.2f}{one / two:>11.2f}")
    for aggregation in ("query-weighted", "mean", "max"):
        (two1, one1), (two3, one3) = p50[aggregation, 1], p50[aggregation, 3]
        print(
            f"{aggregation}: 3× frames costs +{two3 - two1:.2f} ms two-pass, +{one3 - one1:.2f} ms one-pass "
            f"({two3 / two1:.2f}× vs {one3 / one1:.2f}×)"
        )


if __name__ == "__main__":
    main()
