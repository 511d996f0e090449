"""The frames collection's rows: writing a video's FrameTable (insert, upsert), deleting rows, reading them.

Writes run inside the store's write hook (store/write_hook.py). A store made before thinning has no
``merged`` field: its rows are written without it, and merged rows (``merged`` > 1) are refused there.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from vidseek.operators.frame_table import FrameTable
from vidseek.store.columns import result_columns
from vidseek.store.context import StoreContext
from vidseek.store.filters import in_list
from vidseek.store.frame_groups import group_frame_columns, group_frame_rows
from vidseek.store.layout import FRAME_READ, QUERY_LIMIT
from vidseek.store.video_io import iter_query


def frame_pk(video_id: str, idx: int) -> str:
    return f"{video_id}:{int(idx):06d}"


def video_of_pk(pk: str) -> str:
    return pk.rsplit(":", 1)[0]  # keys are "video_id:idx" (``frame_pk``)


def frame_rows(video_id: str, table: FrameTable) -> list[dict]:
    """Frame collection rows: unit vector + its norm (raw = vec · norm, for query weighting), and how many
    sampled frames each row stands for (``merged``, 1 unless thinned)."""
    norms = np.linalg.norm(table.vectors, axis=1).astype(np.float32)
    unit = table.vectors / np.maximum(norms, 1e-12)[:, None]  # [n, D]
    return [
        {
            "pk": frame_pk(video_id, i),
            "video_id": video_id,
            "idx": int(i),
            "t": float(a),
            "t_start": float(b),
            "t_end": float(c),
            "norm": float(n),
            "merged": int(m),
            "vec": u,
        }
        for i, a, b, c, n, m, u in zip(
            table.idx, table.t, table.t_start, table.t_end, norms, table.merged, unit.astype(np.float32)
        )
    ]


class FrameIO:
    def __init__(self, ctx: StoreContext):
        self.ctx = ctx

    def insert_frames(self, video_id: str, table: FrameTable) -> int:
        """Frame rows of one video (raw vectors; ``merged`` > 1 only in a store that records it)."""
        if not len(table):
            return 0
        rows = self._frame_rows(video_id, table)
        with self.ctx.hook.writing([video_id]):
            self.ctx.client.insert(self.ctx.frames, rows)
        return len(rows)

    def upsert_frames(self, video_id: str, table: FrameTable) -> int:
        """Replace frame rows by key (thinning rewrites a run's first row as the merged row)."""
        if not len(table):
            return 0
        self.ctx.require_merged()
        rows = self._frame_rows(video_id, table)
        with self.ctx.hook.writing([video_id]):
            self.ctx.client.upsert(self.ctx.frames, rows)
        return len(table)

    def _frame_rows(self, video_id: str, table: FrameTable) -> list[dict]:
        rows = frame_rows(video_id, table)
        if not self.ctx.has_merged:
            if np.any(table.merged != 1):
                self.ctx.require_merged()
            for r in rows:
                del r["merged"]
        return rows

    def delete_frame_rows(self, pks: Iterable[str]) -> None:
        pks = list(pks)
        with self.ctx.hook.writing(sorted({video_of_pk(pk) for pk in pks})):
            for i in range(0, len(pks), 512):
                self.ctx.client.delete(self.ctx.frames, filter=in_list("pk", pks[i : i + 512]))

    def delete_frames(self, video_ids: Iterable[str]) -> None:
        ids = list(video_ids)
        with self.ctx.hook.writing(ids):
            for i in range(0, len(ids), 512):
                self.ctx.client.delete(self.ctx.frames, filter=in_list("video_id", ids[i : i + 512]))

    def frame_keys(self, video_ids: list[str]) -> dict[str, list[str]]:
        """Every frame row's key per video, merged members not yet deleted included (``vidseek thin``)."""
        out: dict[str, list[str]] = {}
        for i in range(0, len(video_ids), 256):
            expr = in_list("video_id", video_ids[i : i + 256])
            for r in iter_query(self.ctx.client, self.ctx.frames, expr, ["pk", "video_id"]):
                out.setdefault(r["video_id"], []).append(r["pk"])
        return out

    def frame_read_fields(self) -> list[str]:
        return FRAME_READ if self.ctx.has_merged else [f for f in FRAME_READ if f != "merged"]

    def frames_of(self, video_ids: list[str]) -> dict[str, FrameTable]:
        """Every frame row of these videos, one table each (raw vectors), read as columns (store/columns.py)."""
        out: dict[str, FrameTable] = {}
        fields = self.frame_read_fields()
        for i in range(0, len(video_ids), 256):
            expr = in_list("video_id", video_ids[i : i + 256])
            # One plain query per 256 videos (an iterator costs extra round trips); page only when it fills.
            part = self.ctx.client.query(
                self.ctx.frames,
                filter=expr,
                output_fields=fields,
                limit=QUERY_LIMIT,
                strict_float32=True,
                consistency_level=self.ctx.search_consistency,
            )
            if len(part) < QUERY_LIMIT:
                out.update(group_frame_columns(result_columns(part, fields)))
            else:
                out.update(group_frame_rows(iter_query(self.ctx.client, self.ctx.frames, expr, fields)))
        return out
