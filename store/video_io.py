"""The videos collection's rows: writing (upsert, delete with their frames), reading (by id, by filter), counts.

Writes run inside the store's write hook (store/write_hook.py). Layout: store/layout.py.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np

from vidseek.store.context import StoreContext
from vidseek.store.filters import in_list
from vidseek.store.layout import ERR_LEN, PAGE, PATH_LEN, VIDEO_FIELDS

# what a video row holds when its writer left a field out
VIDEO_DEFAULTS = (
    ("status", "ok"),
    ("stage", ""),
    ("decoder", ""),
    ("sampling", ""),
    ("learned_head", ""),
    ("duration", 0.0),
    ("n_frames", 0),
    ("lost", 0),
)


def iter_query(client: Any, collection: str, filter: str, fields: list[str]) -> Iterator[dict]:
    """Every row of ``collection`` matching ``filter``, read in pages of ``PAGE``."""
    it = client.query_iterator(collection, batch_size=PAGE, filter=filter, output_fields=fields, strict_float32=True)
    try:
        while batch := it.next():
            yield from batch
    finally:
        it.close()


class VideoIO:
    def __init__(self, ctx: StoreContext):
        self.ctx = ctx

    def _video_row(self, row: dict, zeros: np.ndarray) -> dict:
        """One row as the collection holds it: strings cut to their field's length, defaults filled in."""
        r = dict(row)
        r["error"] = str(r.get("error", ""))[:ERR_LEN]
        r["path"] = str(r["path"])[:PATH_LEN]
        r.setdefault("metadata", {})
        if not self.ctx.has_learned:
            if r.get("learned_vec") is not None and np.any(r["learned_vec"]):
                raise self.ctx.no_learned_error()
            r.pop("learned_vec", None)
        for f in ("mean_vec", "learned_vec") if self.ctx.has_learned else ("mean_vec",):
            v = r.get(f)
            r[f] = zeros if v is None else np.asarray(v, np.float32)
        for f, default in VIDEO_DEFAULTS:
            r.setdefault(f, default)
        return r

    def upsert_videos(self, rows: list[dict]) -> None:
        """Video rows; missing vectors become zeros (error records, or no learned head)."""
        if not rows:
            return
        zeros = np.zeros(self.ctx.dim, np.float32)
        out = [self._video_row(r, zeros) for r in rows]
        with self.ctx.hook.writing([r["video_id"] for r in rows], rows):
            self.ctx.client.upsert(self.ctx.videos, out)

    def delete_videos(self, video_ids: Iterable[str]) -> None:
        """All rows (video and frames) of these videos."""
        ids, ctx = list(video_ids), self.ctx
        with ctx.hook.writing(ids):
            for i in range(0, len(ids), 512):
                part = ids[i : i + 512]
                ctx.client.delete(ctx.frames, filter=in_list("video_id", part))
                ctx.client.delete(ctx.videos, filter=in_list("video_id", part))

    def iter_query(self, collection: str, filter: str, fields: list[str]) -> Iterator[dict]:
        return iter_query(self.ctx.client, collection, filter, fields)

    def video_records(self, filter: str = 'video_id != ""', fields: list[str] | None = None) -> list[dict]:
        if self.ctx.dim is None:
            return []
        fields, fill = self._readable(fields or VIDEO_FIELDS)
        return [{**r, **fill} for r in self.iter_query(self.ctx.videos, filter, fields)]

    def get_videos(self, video_ids: list[str], fields: list[str] | None = None) -> dict[str, dict]:
        fields, fill = self._readable(fields or VIDEO_FIELDS)
        out: dict[str, dict] = {}
        for i in range(0, len(video_ids), 512):
            rows = self.ctx.client.query(
                self.ctx.videos,
                filter=in_list("video_id", video_ids[i : i + 512]),
                output_fields=fields,
                strict_float32=True,
                consistency_level=self.ctx.search_consistency,
            )
            out.update({r["video_id"]: {**r, **fill} for r in rows})
        return out

    def _readable(self, fields: list[str]) -> tuple[list[str], dict]:
        """Fields this store holds, and zeros for ``learned_vec`` where it has none (Milvus 2.3)."""
        if self.ctx.has_learned or "learned_vec" not in fields:
            return fields, {}
        return [f for f in fields if f != "learned_vec"], {"learned_vec": np.zeros(self.ctx.dim, np.float32)}

    def count(self, collection: str | None = None, filter: str = "") -> int:
        if self.ctx.dim is None:
            return 0
        rows = self.ctx.client.query(collection or self.ctx.videos, filter=filter, output_fields=["count(*)"])
        return int(rows[0]["count(*)"])
