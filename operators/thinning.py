"""Frame-table thinning: consecutive near-duplicate frame rows merged into one row (docs/methods.md "Thinning").

A run of consecutive rows joins while each row's cosine to the run's *first* row (its anchor) is ≥ the
threshold; anchoring, rather than comparing neighbours, keeps a slow pan from chaining into one row. The
merged row:

- keeps the first member's ``idx`` (so its key is that member's key, and a merge is an upsert of it);
- spans the run: ``t_start`` of the first member, ``t_end`` of the last; ``t`` is the middle member's;
- holds the weighted mean of the members' raw vectors, and ``merged``, how many sampled frames it stands
  for (the sum of the members' own counts: thinning a thinned table coarsens it).

Scorers weigh a row by ``merged`` (``vidseek.operators.aggregate``), so exact duplicates score exactly as
the unthinned frames did; ``expand_merged`` gives the temporal heads their frame sequence back.
"""

from __future__ import annotations

import numpy as np

from vidseek.operators.frame_table import FrameTable

EPS = 1e-12
SLACK = 1e-6  # float32 cosines of identical vectors can read 0.9999999: 1.0 means "exact duplicates"


def check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not 0.0 < threshold <= 1.0:
        raise ValueError(
            f"a merge threshold is a cosine similarity in (0, 1], got {threshold:g}: 1 merges exact duplicates "
            "only, 0.95 near-duplicates; lower merges more"
        )
    return threshold


def merge_runs(unit: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """[start, end) of each run of rows whose unit vectors [n, D] stay within ``threshold`` of the run's first."""
    runs, start = [], 0
    for i in range(1, len(unit)):
        if float(unit[i] @ unit[start]) < threshold - SLACK:
            runs.append((start, i))
            start = i
    if len(unit):
        runs.append((start, len(unit)))
    return runs


def merge_similar(rows: FrameTable, threshold: float) -> FrameTable:
    """The thinned table of one video (rows already sorted by idx)."""
    check_threshold(threshold)
    vectors = np.asarray(rows.vectors, np.float32)
    merged = np.asarray(rows.merged, np.int64)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), EPS)  # [n, D]
    runs = merge_runs(unit, threshold)
    first = np.array([a for a, _ in runs], dtype=np.int64)
    last = np.array([b - 1 for _, b in runs], dtype=np.int64)
    middle = np.array([(a + b - 1) // 2 for a, b in runs], dtype=np.int64)
    counts = np.add.reduceat(merged, first) if len(first) else np.zeros(0, np.int64)
    # a merged row's raw vector is the mean over the frames it stands for: each member weighs its own count
    sums = np.add.reduceat(vectors * merged[:, None], first, axis=0) if len(first) else vectors[:0]  # [m, D]
    return FrameTable(
        idx=np.asarray(rows.idx)[first],
        t=np.asarray(rows.t, np.float32)[middle],
        t_start=np.asarray(rows.t_start, np.float32)[first],
        t_end=np.asarray(rows.t_end, np.float32)[last],
        vectors=(sums / np.maximum(counts, 1)[:, None]).astype(np.float32),
        merged=counts.astype(np.int64),
    )


def expand_merged(vectors: np.ndarray, merged: np.ndarray | None) -> np.ndarray:
    """Each row repeated as many times as the frames it stands for: [sum(merged), D] (a temporal head's input)."""
    if merged is None or not len(merged) or np.all(merged == 1):
        return vectors
    return np.repeat(vectors, np.asarray(merged, np.int64), axis=0)
