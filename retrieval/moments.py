"""Moment accuracy: does a hit point at the right place in its video? (docs/methods.md, "Moments")

Every hit reports a moment (``Hit.moment``: the best-matching frame's span grown over neighbours, and
``Hit.best_t``: that frame's time). For queries whose caption says where it holds (``CaptionPair.spans``,
seconds), per configuration:

- ``overlap@10``: % of queries whose video is in the top 10 and whose hit moment overlaps a true span
  (bounded by R@10); ``overlap|top10``: the same % of those whose video is in the top 10 (the moment
  rule's own accuracy, retrieval set aside);
- ``median_err_s``: median, over the queries whose video is in the top 10, of the distance from ``best_t``
  to the nearest true span (0 when inside it);
- ``R@1 IoU≥0.5``: % of queries whose top hit is their video and whose moment has IoU ≥ 0.5 with a true
  span, as moment-retrieval benchmarks (Charades-STA) report it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

Span = tuple[float, float]


def iou(a: Span, b: Span) -> float:
    """Temporal intersection over union of two [start, end) spans."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def distance(t: float, spans: Sequence[Span]) -> float:
    """Seconds from ``t`` to the nearest span (0 inside one)."""
    return min(max(a - t, 0.0, t - b) for a, b in spans)


def overlaps(a: Span, spans: Sequence[Span]) -> bool:
    return any(a[0] < b and s < a[1] for s, b in spans)


def moment_metrics(results: Sequence[Sequence], gt_ids: Sequence[str | None], spans: Sequence[Sequence[Span]]) -> dict:
    """The metrics above over the queries that have spans; ``results[i]``: query i's hits, best first."""
    n = hit10 = overlap10 = iou1 = 0
    errors = []
    for hits, gt, truth in zip(results, gt_ids, spans):
        if not truth:
            continue
        n += 1
        top = list(hits[:10])
        mine = next((h for h in top if h.video_id == gt), None)
        if mine is None:
            continue
        hit10 += 1
        overlap10 += overlaps(tuple(mine.moment), truth)
        errors.append(distance(mine.best_t, truth))
        if top[0].video_id == gt and max(iou(tuple(mine.moment), s) for s in truth) >= 0.5:
            iou1 += 1
    pct = (lambda x: 100.0 * x / n) if n else (lambda x: float("nan"))  # noqa: E731
    return {
        "overlap@10": pct(overlap10),
        "median_err_s": float(np.median(errors)) if errors else float("nan"),
        "R@1 IoU≥0.5": pct(iou1),
        "in_top10": pct(hit10),
        "overlap|top10": 100.0 * overlap10 / hit10 if hit10 else float("nan"),
        "n_moments": n,
    }
