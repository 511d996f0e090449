"""Temporal alignment of two frame sequences: Smith-Waterman local alignment over their cosine matrix.

Used by the video-clip query (``retrieval/query_by_example.py``: the query's frames against each candidate's)
and by copy detection (``retrieval/copies.py``: a stored video's frames against another's). docs/copies.md
gives the formulas and why these defaults.

Given the cosine matrix S [Ta, Tb] of two videos' unit frame vectors, each frame pair scores w_ij = S_ij − θ
(positive where the frames match). The best local alignment is the path of highest total score through the
matrix (Smith & Waterman, 1981):

    H_ij = max(0, H_(i−1)(j−1) + w_ij, H_(i−1)j − g, H_i(j−1) − g)

A diagonal step matches frame i of a with frame j of b; a vertical or horizontal step skips a frame of one
side at cost g, which is what lets one sequence run at another rate (a speed change: a scale factor on the
time axis) or lose a frame. Frames marked *neutral* (uninformative frames that match many videos: black,
empty, title cards) score at most 0: a path may cross them but not be made of them. The path found is then
grown along the diagonal over neighbouring pairs whose cosine stays ≥ ``extend`` (neutral frames included):
two copies that both start on the same black frames are aligned from their first frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidseek.operators.frame_table import FrameTable


@dataclass(frozen=True)
class AlignParams:
    threshold: float = 0.9  # θ: a frame pair counts as matching above this cosine
    gap: float = 0.02  # g: cost of skipping one frame on either side
    extend: float | None = None  # grow the ends along the diagonal while cos ≥ this (None: θ)


@dataclass(frozen=True)
class Alignment:
    """The best local alignment of a against b: rows ``a[0]..a[1]`` of a with rows ``b[0]..b[1]`` of b
    (inclusive), ``score`` its Smith-Waterman score, ``similarity`` the mean cosine of its matched pairs."""

    score: float
    similarity: float
    matches: int
    a: tuple[int, int]
    b: tuple[int, int]

    def a_span(self, frames: FrameTable) -> tuple[float, float]:
        return float(frames.t_start[self.a[0]]), float(frames.t_end[self.a[1]])

    def b_span(self, frames: FrameTable) -> tuple[float, float]:
        return float(frames.t_start[self.b[0]]), float(frames.t_end[self.b[1]])


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32): raw CLIP features → cosines by dot product."""
    v = np.asarray(vectors, np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """cos(a_i, b_j) [Ta, Tb] of two sets of vectors (any norm)."""
    return unit_rows(a) @ unit_rows(b).T


def local_alignment(
    sim: np.ndarray,
    params: AlignParams = AlignParams(),
    neutral_a: np.ndarray | None = None,
    neutral_b: np.ndarray | None = None,
) -> Alignment | None:
    """The best local alignment over the cosine matrix ``sim`` [Ta, Tb]; None when no frame pair matches.

    ``neutral_a`` [Ta] / ``neutral_b`` [Tb]: frames that may be crossed but earn nothing (see module doc)."""
    sim = np.asarray(sim, np.float64)
    if sim.size == 0:
        return None
    w = sim - params.threshold
    neutral = _neutral_mask(sim.shape, neutral_a, neutral_b)
    if neutral is not None:
        w = np.where(neutral, np.minimum(w, 0.0), w)
    best = _smith_waterman(w, sim, params.gap)
    if best is None:
        return None
    score, (ai, bj), (a0, b0), matches, total = best
    extend = params.threshold if params.extend is None else params.extend
    (a0, b0), (ai, bj), grown, grown_sum = _grow(sim, (a0, b0), (ai, bj), extend)
    return Alignment(float(score), float((total + grown_sum) / (matches + grown)), matches + grown, (a0, ai), (b0, bj))


def _neutral_mask(shape, neutral_a, neutral_b) -> np.ndarray | None:
    if neutral_a is None and neutral_b is None:
        return None
    na = np.zeros(shape[0], bool) if neutral_a is None else np.asarray(neutral_a, bool)
    nb = np.zeros(shape[1], bool) if neutral_b is None else np.asarray(neutral_b, bool)
    return na[:, None] | nb[None, :]


def _smith_waterman(w: np.ndarray, sim: np.ndarray, gap: float):
    """(score, end, start, matches, Σ cos of matches) of the best path, one numpy pass per row of a.

    Each cell carries where its path started and what it matched, so no traceback matrix is kept. Within a
    row, the horizontal moves H_ij = max_k≤j (A_ik − g (j − k)) are a running maximum of A + g·j."""
    ta, tb = w.shape
    cols = np.arange(tb)
    h = np.zeros(tb)
    start = np.full((tb, 2), -1)
    n = np.zeros(tb, np.int64)
    tot = np.zeros(tb)
    best = None
    for i in range(ta):
        hd = np.r_[0.0, h[:-1]]  # H_(i−1)(j−1)
        fresh = hd <= 0  # a diagonal step from nothing starts a path here
        d = hd + w[i]
        d_start = np.where(fresh[:, None], np.c_[np.full(tb, i), cols], np.r_[[[-1, -1]], start[:-1]])
        d_n = np.where(fresh, 0, np.r_[0, n[:-1]]) + 1
        d_tot = np.where(fresh, 0.0, np.r_[0.0, tot[:-1]]) + sim[i]
        up = h - gap  # skip frame i of a
        take_up = up > d
        a_h = np.maximum(np.maximum(d, up), 0.0)
        a_start = np.where(take_up[:, None], start, d_start)
        a_n = np.where(take_up, n, d_n)
        a_tot = np.where(take_up, tot, d_tot)
        run = np.maximum.accumulate(a_h + gap * cols)  # skip frames of b: the best cell to the left, less gaps
        src = np.maximum.accumulate(np.where(a_h + gap * cols >= run, cols, 0))
        h = run - gap * cols
        start, n, tot = a_start[src], a_n[src], a_tot[src]
        dead = h <= 0
        h[dead], n[dead], tot[dead] = 0.0, 0, 0.0
        start[dead] = -1
        j = int(np.argmax(h))
        if h[j] > 0 and (best is None or h[j] > best[0]):
            best = (float(h[j]), (i, j), (int(start[j, 0]), int(start[j, 1])), int(n[j]), float(tot[j]))
    return best


def _grow(sim: np.ndarray, first: tuple[int, int], last: tuple[int, int], extend: float):
    """Grow a path's ends along the diagonal while the next pair's cosine is ≥ ``extend``."""
    (a0, b0), (a1, b1) = first, last
    grown, grown_sum = 0, 0.0
    while a0 > 0 and b0 > 0 and sim[a0 - 1, b0 - 1] >= extend:
        a0, b0 = a0 - 1, b0 - 1
        grown, grown_sum = grown + 1, grown_sum + sim[a0, b0]
    ta, tb = sim.shape
    while a1 < ta - 1 and b1 < tb - 1 and sim[a1 + 1, b1 + 1] >= extend:
        a1, b1 = a1 + 1, b1 + 1
        grown, grown_sum = grown + 1, grown_sum + sim[a1, b1]
    return (a0, b0), (a1, b1), grown, grown_sum
