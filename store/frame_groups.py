"""Stored frame rows grouped per video: the store's own layout (unit vectors and norms) and FrameTables.

Readers (``frames_of``, the in-memory replica) leave out rows that lie inside a merged row's span: they are
the members a thinning that was stopped midway had not deleted yet (store/thin.py).
"""

from __future__ import annotations

import numpy as np

from vidseek.operators.frame_table import FrameTable
from vidseek.store.columns import result_columns


def group_stored_rows(rows) -> dict[str, dict[str, np.ndarray]]:
    """Frame rows (dicts) -> per video in the store's layout (``group_stored_columns``)."""
    rows = list(rows)
    return group_stored_columns(result_columns(rows, list(rows[0]))) if rows else {}


def group_stored_columns(cols: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Frame rows as columns (``result_columns``) -> per video, in the store's own layout (what a replica
    keeps in memory), sorted by idx: idx, t, t_start, t_end, norm, merged [T] and unit vectors [T, D].

    Rows inside a merged row's span are left out: they are the members a thinning that was stopped midway
    had not deleted yet (it writes the merged row first), and the merged row already stands for them."""
    n = len(cols["video_id"])
    if not n:
        return {}
    vid = cols["video_id"].astype(str)  # [N] fixed-width: sorts in C, not by Python comparisons
    idx = cols["idx"].astype(np.int64)
    order = np.argsort(idx, kind="stable")
    order = order[np.argsort(vid[order], kind="stable")]  # by video, then idx
    cuts = np.flatnonzero(vid[order][1:] != vid[order][:-1]) + 1
    merged = cols["merged"].astype(np.int64) if "merged" in cols else np.ones(n, np.int64)
    t, t0, t1, norm = (cols[k].astype(np.float32) for k in ("t", "t_start", "t_end", "norm"))
    unit = np.asarray(cols["vec"], np.float32)  # [N, D]
    out = {}
    for sel in np.split(order, cuts):
        if np.any(merged[sel] > 1):
            sel = sel[_outside_merged_spans(merged[sel], cols["t_end"][sel].astype(np.float64))]
        out[str(vid[sel[0]])] = {
            "idx": idx[sel],
            "t": t[sel],
            "t_start": t0[sel],
            "t_end": t1[sel],
            "norm": norm[sel],
            "merged": merged[sel],
            "unit": unit[sel],
        }
    return out


def _outside_merged_spans(merged: np.ndarray, t_end: np.ndarray) -> np.ndarray:
    """Which rows (sorted by idx) to keep: not the members inside a merged row's span (group_stored_columns)."""
    keep = np.ones(len(merged), bool)
    last = None
    for i in range(len(merged)):
        if last is not None and merged[last] > 1 and t_end[i] <= t_end[last] + 1e-4:
            keep[i] = False
            continue
        last = i
    return keep


def table_of(stored: dict[str, np.ndarray]) -> FrameTable:
    """A video's rows in the store's layout (``group_stored_columns``) as a FrameTable: raw = unit × norm."""
    raw = stored["unit"] * stored["norm"][:, None]  # [T, D]
    return FrameTable(stored["idx"], stored["t"], stored["t_start"], stored["t_end"], raw, stored["merged"])


def group_frame_columns(cols: dict[str, np.ndarray]) -> dict[str, FrameTable]:
    """Frame rows as columns -> one FrameTable per video (see ``group_stored_columns``)."""
    return {vid: table_of(stored) for vid, stored in group_stored_columns(cols).items()}


def group_frame_rows(rows) -> dict[str, FrameTable]:
    """Frame rows of any videos -> one FrameTable per video (see ``group_stored_rows``)."""
    return {vid: table_of(stored) for vid, stored in group_stored_rows(rows).items()}
