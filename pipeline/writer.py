"""The store writer: the one process that owns the store connection (Milvus Lite allows one per store).

It receives encoded frame rows and per-video end records in any order (encoder actors run in parallel and
decode retries may repeat rows), de-duplicates by (video_id, idx), aggregates each video once all of its
frames have arrived, and writes in this order: frame rows first, the video row last. A video therefore
counts as done (status "ok" row present) only after all its frames are durable; a job killed at any moment
leaves at most frames without a video row, which the next run deletes before re-indexing that video.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import torch

from operators.aggregate import mean_pool
from retrieval.store import VideoStore

RESULT_COLUMNS = ("video_id", "path", "status", "stage", "error", "n_frames", "duration", "lost", "decoder")


def _load_head(path: str, stamp: dict):
    # imported here: operators.heads pulls in open_clip (torchvision, torch._dynamo), ~5 s of CPU at start-up
    # that a job without a learned head would spend beside its decoders
    from operators.heads import HeadAggregator

    return HeadAggregator(path, stamp)


@dataclass
class _Pending:
    path: str
    frames: dict[int, tuple[float, float, float, np.ndarray]] = field(default_factory=dict)
    unflushed: list[int] = field(default_factory=list)
    flushed: int = 0
    end: dict | None = None
    encode_error: str = ""

    def complete(self) -> bool:
        if self.end is None:
            return False
        return self.end["status"] != "ok" or bool(self.encode_error) or len(self.frames) >= self.end["n_frames"]


class WriterHooks:
    """Observer of the writer's order of work; does nothing. Tests pass one that crashes at a point
    (``pipeline/faults.FaultInjector``): ``before_frames``, ``after_frames``, ``after_videos``."""

    def reached(self, point: str) -> None:
        pass


class StoreWriter:
    """Callable stage: encoded row batches in -> one result row per finished video out."""

    def __init__(self, uri: str | VideoStore, stamp: dict, sampling: str, prefix: str = "vidseek",
                 flush_rows: int = 2048, head=None, expected: int | None = None, head_path: str | None = None,
                 hooks: WriterHooks | None = None):
        # A VideoStore passed in is shared with its owner (a service that also searches) and stays open.
        self.owns_store = not isinstance(uri, VideoStore)
        self.store = VideoStore(uri, prefix) if self.owns_store else uri
        self.store.ensure_model(stamp)
        self.sampling = sampling
        self.flush_rows = flush_rows
        # optional learned temporal head: callable(raw frames [T, D]) -> (unit vector [D], head id)
        self.head = head if head is not None else (_load_head(head_path, stamp) if head_path else None)
        self.pending: dict[str, _Pending] = {}
        self.buffered = 0
        self.expected = expected  # videos in the job: once all are written, release the store at once
        self.finished = 0
        self.hooks = hooks or WriterHooks()

    def __call__(self, batch: dict) -> dict:
        self._absorb(batch)
        done = [vid for vid, p in self.pending.items() if p.complete()]
        if done or self.buffered >= self.flush_rows:
            self.hooks.reached("before_frames")
            self._flush_frames(done if self.buffered < self.flush_rows else list(self.pending))
            self.hooks.reached("after_frames")
        rows = [self._finish(vid) for vid in done]
        self.store.upsert_videos(rows)  # after the frames: a video row marks a durable, complete video
        if rows:
            self.hooks.reached("after_videos")
        results = [{c: r.get(c, "") for c in RESULT_COLUMNS} for r in rows]
        self.finished += len(rows)
        if self.owns_store and self.expected is not None and self.finished >= self.expected and not self.pending:
            # Milvus Lite holds a per-process lock; Ray may keep this actor alive after the job, so free
            # the store now for the driver (search right after indexing) or the next job.
            self.store.close()
        return {c: np.array([r[c] for r in results], dtype=object if c in ("video_id", "path", "status", "stage",
                "error", "decoder") else None) for c in RESULT_COLUMNS}

    def _absorb(self, batch: dict) -> None:
        kinds = batch["kind"]
        for i, kind in enumerate(kinds):
            vid = str(batch["video_id"][i])
            p = self.pending.setdefault(vid, _Pending(str(batch["path"][i])))
            if kind == "end":
                p.end = {
                    "status": str(batch["status"][i]), "error": str(batch["error"][i]),
                    "n_frames": int(batch["n_frames"][i]), "duration": float(batch["duration"][i]),
                    "lost": int(batch["lost"][i]), "decoder": str(batch["decoder"][i]),
                    "extra": str(batch["extra"][i]) if "extra" in batch else "",
                }
                continue
            err = str(batch["error"][i]) if "error" in batch else ""
            if err:
                p.encode_error = p.encode_error or err
                continue
            idx = int(batch["idx"][i])
            if idx in p.frames:
                continue  # a retried upstream task repeated this row
            p.frames[idx] = (float(batch["t"][i]), float(batch["t_start"][i]), float(batch["t_end"][i]),
                             np.array(batch["embedding"][i], dtype=np.float32))
            p.unflushed.append(idx)
            self.buffered += 1

    def _flush_frames(self, video_ids: list[str]) -> None:
        for vid in video_ids:
            p = self.pending[vid]
            if not p.unflushed or (p.end is not None and (p.end["status"] != "ok" or p.encode_error)):
                continue
            idx = np.array(sorted(p.unflushed))
            rows = [p.frames[i] for i in idx]
            self.store.insert_frames(
                vid, idx, np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                np.array([r[2] for r in rows]), np.stack([r[3] for r in rows]),
            )
            p.flushed += len(idx)
            self.buffered -= len(idx)
            p.unflushed.clear()

    def _finish(self, vid: str) -> dict:
        p = self.pending.pop(vid)
        end = p.end
        self.buffered -= len(p.unflushed)
        metadata = json.loads(end["extra"]) if end["extra"] else {}
        row = {"video_id": vid, "path": p.path, "duration": end["duration"], "lost": end["lost"],
               "decoder": end["decoder"], "sampling": self.sampling, "metadata": metadata}
        if end["status"] != "ok" or p.encode_error:
            if p.flushed:
                self.store.delete_frames([vid])
            stage = "decode" if end["status"] != "ok" else "encode"
            row.update(status="failed", stage=stage, error=end["error"] or p.encode_error, n_frames=0)
        else:
            order = sorted(p.frames)
            vectors = torch.from_numpy(np.stack([p.frames[i][3] for i in order]))  # [T, D] raw
            row.update(status="ok", stage="", error="", n_frames=len(order),
                       mean_vec=mean_pool(vectors.unsqueeze(0))[0].numpy())
            if self.head is not None:
                row["learned_vec"], row["learned_head"] = self.head(vectors.numpy())
        return row

    def close(self) -> None:
        self.store.close()
