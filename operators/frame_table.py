"""``FrameTable``: one video's frame rows, the one shape a frame row has from the encoder to search.

The writer builds it from the encoder's output, thinning merges it (operators/thinning.py), the store writes it
(``VideoStore.insert_frames(video_id, table)``) and reads it back (``frames_of -> {video_id: FrameTable}``), and
search, reranking and the temporal heads score it. The store keeps a unit vector and its norm per row; a table
always holds the raw CLIP features (unit × norm), which query-weighted pooling needs (docs/methods.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FrameTable:
    """Rows sorted by idx. ``idx`` [n] int (the sample's index: its key in the store), ``t`` [n] the decoded
    frame's time, ``t_start``/``t_end`` [n] the span it stands for (s), ``vectors`` [n, D] raw features,
    ``merged`` [n] how many sampled frames each row stands for (1 unless thinned)."""

    idx: np.ndarray
    t: np.ndarray
    t_start: np.ndarray
    t_end: np.ndarray
    vectors: np.ndarray
    merged: np.ndarray

    @classmethod
    def of(
        cls,
        idx: np.ndarray,
        t: np.ndarray,
        t_start: np.ndarray,
        t_end: np.ndarray,
        vectors: np.ndarray,
        merged: np.ndarray | None = None,
    ) -> "FrameTable":
        """A table from array-likes; ``merged`` None: one sampled frame per row."""
        idx = np.asarray(idx)
        return cls(
            idx,
            np.asarray(t),
            np.asarray(t_start),
            np.asarray(t_end),
            np.asarray(vectors, np.float32),
            np.ones(len(idx), np.int64) if merged is None else np.asarray(merged, np.int64),
        )

    def __len__(self) -> int:
        return len(self.idx)

    def take(self, sel: np.ndarray) -> "FrameTable":
        return FrameTable(
            self.idx[sel], self.t[sel], self.t_start[sel], self.t_end[sel], self.vectors[sel], self.merged[sel]
        )
