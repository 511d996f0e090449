"""The searchable part of a store held in process memory: a long-lived searcher's answer to Milvus Lite's cost.

Milvus Lite 3 is a pure-Python engine: every search walks all rows of a collection in Python before FAISS
runs (deduplication and tombstone masks), and every query costs ~0.1 ms per returned row. Measured at 10k
videos / 300k frame vectors on a 2-core VM: a grouped frame search takes ~0.6 s and fetching 120
candidates' frames ~1.2 s, whatever the index. A Milvus server does both in C++ and needs none of this.

``StoreReplica`` loads the ``ok`` videos and their frames once (streamed, ~0.2 ms per frame row) and then
answers the searcher's four store calls exactly, with numpy:

- video-level search: inner product against every video vector (the same metric as the store's index);
- frame-level search grouped per video: inner product against every frame, max per video (exact max
  pooling, where Lite's grouped search is approximate);
- video rows and frame data for rescoring, from memory.

Brute force is exact and needs no index build; at 300k × 512 a query reads ~0.6 GB (the unit frame matrix,
float32), ~45 ms on this machine. Metadata filters stay with Milvus (the searcher asks the store which
videos a filter allows, then restricts the replica to them).

Freshness: the replica is the store as of the last ``refresh()``; ``mark_changed(ids)`` (the search service
wires it to its store's write notifications) re-reads those videos before the next search.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from vidseek.operators.frame_table import FrameTable
from vidseek.retrieval.backends import Where
from vidseek.store.filters import in_list
from vidseek.store.video_store import VideoStore, group_stored_rows, table_of

log = logging.getLogger(__name__)

ROW_FIELDS = ["video_id", "path", "status", "metadata", "learned_head", "mean_vec", "learned_vec"]


class StoreReplica:
    def __init__(self, store: VideoStore):
        self.store = store
        self._lock = threading.Lock()
        self._videos: dict[str, dict] = {}  # video_id -> row (vectors as float32 arrays)
        self._frames: dict[str, dict[str, np.ndarray]] = {}  # video_id -> unit vecs, norms, times
        self._changed: set[str] = set()
        self._arrays: dict | None = None  # concatenated views, rebuilt after changes
        self.load_s = 0.0
        self.refresh()

    # -- freshness ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Reload every ``ok`` video and its frames from the store."""
        t = time.perf_counter()
        rows = self.store.video_records('status == "ok"', ROW_FIELDS)
        frames = self._read_frames(None, keep={r["video_id"] for r in rows})
        with self._lock:
            self._videos = {r["video_id"]: self._row(r) for r in rows if r["video_id"] in frames}
            self._frames = {v: frames[v] for v in self._videos}
            self._changed.clear()
            self._arrays = None
        self.load_s = time.perf_counter() - t
        log.info("replica: %d videos, %d frames loaded in %.1f s", len(self._videos), self.n_frames, self.load_s)

    def mark_changed(self, video_ids: list[str], *_rows) -> None:
        """These videos were written or deleted: re-read them before the next search."""
        with self._lock:
            self._changed.update(video_ids)

    def _sync(self) -> None:
        with self._lock:
            ids = sorted(self._changed)
            self._changed.clear()
        if not ids:
            return
        rows = [r for r in self.store.get_videos(ids, ROW_FIELDS).values() if r.get("status") == "ok"]
        frames = self._read_frames([r["video_id"] for r in rows])
        with self._lock:
            for v in ids:
                self._videos.pop(v, None)
                self._frames.pop(v, None)
            for r in rows:
                if r["video_id"] in frames:
                    self._videos[r["video_id"]] = self._row(r)
                    self._frames[r["video_id"]] = frames[r["video_id"]]
            self._arrays = None

    def _read_frames(
        self, video_ids: list[str] | None, keep: set[str] | None = None
    ) -> dict[str, dict[str, np.ndarray]]:
        """Unit vectors, norms and times per video, sorted by frame index (the store keeps vectors unit).

        ``video_ids=None``: one pass over the whole frames collection, keeping the videos in ``keep`` (Lite
        scans every row for each filtered query, so many ``in [...]`` queries would cost a scan each)."""
        if video_ids is None:
            scans = [self.store.iter_query(self.store.frames, 'video_id != ""', self.store.frame_read_fields())]
        else:
            scans = [
                self.store.iter_query(
                    self.store.frames, in_list("video_id", video_ids[i : i + 256]), self.store.frame_read_fields()
                )
                for i in range(0, len(video_ids), 256)
            ]
        return group_stored_rows(r for scan in scans for r in scan if keep is None or r["video_id"] in keep)

    @staticmethod
    def _row(r: dict) -> dict:
        r = dict(r)
        for f in ("mean_vec", "learned_vec"):
            r[f] = np.asarray(r[f], np.float32)
        return r

    def _views(self) -> dict:
        """Concatenated arrays over all videos (rebuilt lazily after changes)."""
        self._sync()
        with self._lock:
            if self._arrays is None:
                ids = list(self._videos)
                lengths = np.array([len(self._frames[v]["unit"]) for v in ids], dtype=np.int64)
                dim = self.store.dim or 0
                self._arrays = {
                    "ids": ids,
                    "col": {v: j for j, v in enumerate(ids)},
                    "starts": np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
                    if ids
                    else np.zeros(0, np.int64),
                    "frames": np.concatenate([self._frames[v]["unit"] for v in ids])
                    if ids
                    else np.zeros((0, dim), np.float32),  # [N, D] unit
                    "mean_vec": np.stack([self._videos[v]["mean_vec"] for v in ids])
                    if ids
                    else np.zeros((0, dim), np.float32),  # [V, D]
                    "learned_vec": np.stack([self._videos[v]["learned_vec"] for v in ids])
                    if ids
                    else np.zeros((0, dim), np.float32),
                }
                # per-video vectors become views into the one matrix: the frames are held once, not twice
                for v, start, n in zip(ids, self._arrays["starts"], lengths):
                    self._frames[v]["unit"] = self._arrays["frames"][start : start + n]
            return self._arrays

    @property
    def n_frames(self) -> int:
        return sum(len(f["unit"]) for f in self._frames.values())

    def __len__(self) -> int:
        return len(self._videos)

    # -- the searcher's store calls -------------------------------------------------------------------
    def search_videos(self, queries: np.ndarray, k: int, field: str, where: Where) -> list[list[dict]]:
        """Top-k videos by inner product with their ``field`` vector; queries [Q, D] unit. The replica holds
        only ok videos; ``where.ids`` (from the store's own filter evaluation) restricts them further."""
        a = self._views()
        scores = queries.astype(np.float32) @ a[field].T  # [Q, V]
        return self._top(scores, a["ids"], k, where.ids)

    def search_frames_grouped(self, queries: np.ndarray, k: int, where: Where) -> list[list[dict]]:
        """Top-k videos by their best frame (exact max pooling over every frame)."""
        a = self._views()
        if not a["ids"]:
            return [[] for _ in queries]
        sims = a["frames"] @ queries.astype(np.float32).T  # [N, Q]
        best = np.maximum.reduceat(sims, a["starts"], axis=0).T  # [Q, V]: max over each video's rows
        return self._top(best, a["ids"], k, where.ids)

    @staticmethod
    def _top(scores: np.ndarray, ids: list[str], k: int, allowed: frozenset[str] | None) -> list[list[dict]]:
        if allowed is not None:
            keep = np.array([v in allowed for v in ids], dtype=bool)
            scores = np.where(keep[None, :], scores, -np.inf)
        out = []
        for row in scores:
            n = min(k, int(np.isfinite(row).sum()))
            if n == 0:
                out.append([])
                continue
            top = np.argpartition(-row, n - 1)[:n]
            top = top[np.argsort(-row[top], kind="stable")]
            out.append([{"video_id": ids[j], "score": float(row[j])} for j in top])
        return out

    def get_videos(self, video_ids: list[str], fields: list[str] | None = None) -> dict[str, dict]:
        self._sync()
        with self._lock:
            return {
                v: (dict(self._videos[v]) if fields is None else {f: self._videos[v].get(f) for f in fields})
                for v in video_ids
                if v in self._videos
            }

    def get(self, video_ids: list[str], admit=None) -> dict[str, FrameTable]:
        """Frame tables like ``VideoStore.frames_of`` (raw vectors = unit × norm): the searcher's frame source."""
        self._sync()
        with self._lock:
            entries = {v: self._frames[v] for v in video_ids if v in self._frames}
        return {v: table_of(f) for v, f in entries.items()}
