"""The store writer: the one process that owns the store connection (Milvus Lite allows one per store).

It receives encoded frame rows and per-video records (operators/rows.py) in any order (encoder actors run
in parallel and decode retries may repeat rows), de-duplicates by (video_id, idx), and once all of a
video's frames have arrived applies the job's pooling step (``VideoVectors``, over every frame) and writes in
this order (frame rows merged first when the job thins, ``merge_similar``; operators/thinning.py):
frame rows first, the video row last. A video therefore counts as done (status "ok" row present) only after
all its frames are durable; a job killed at any moment leaves at most frames without a video row, which the
next run deletes before re-indexing that video.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from vidseek.operators.frame_table import FrameTable
from vidseek.operators.rows import EncodeFailure, VideoEnd, VideoRow, from_batch, results_to_batch
from vidseek.operators.thinning import merge_similar
from vidseek.operators.video_vectors import VideoVectors
from vidseek.store.video_store import VideoStore


@dataclass
class _Pending:
    path: str
    frames: dict[int, tuple[float, float, float, np.ndarray]] = field(default_factory=dict)  # idx -> t, span, vec
    unflushed: list[int] = field(default_factory=list)
    flushed: int = 0
    end: VideoEnd | None = None
    encode_error: str = ""

    @property
    def failed(self) -> bool:
        return self.end is not None and (not self.end.ok or bool(self.encode_error))

    def complete(self) -> bool:
        return self.end is not None and (self.failed or len(self.frames) >= self.end.n_frames)


class WriterHooks:
    """Observer of the writer's order of work; does nothing. Tests pass one that crashes at a point
    (``pipeline/faults.FaultInjector``): ``before_frames``, ``after_frames``, ``after_videos``."""

    def reached(self, point: str) -> None:
        pass


class StoreWriter:
    """Callable stage: encoded stage batches in -> one result row per finished video out (``VideoResult``s,
    as operators/rows.py ``results_to_batch``).

    ``video_vectors``: the job's pooling step (meanP, plus a learned head's vector if the job has one).
    ``merge_similar``: merge consecutive frame rows at this cosine threshold before writing them (None: every
    sampled frame is a row). A run never spans two flushes of a video; most videos are flushed whole.
    """

    def __init__(
        self,
        uri: str | VideoStore,
        stamp: dict,
        sampling: str,
        prefix: str = "vidseek",
        flush_rows: int = 2048,
        video_vectors: VideoVectors | None = None,
        expected: int | None = None,
        hooks: WriterHooks | None = None,
        retry_s: float = 60.0,
        merge_similar: float | None = None,
    ):
        # A VideoStore passed in is shared with its owner (a service that also searches) and stays open.
        self.owns_store = not isinstance(uri, VideoStore)
        self.store = VideoStore(uri, prefix, retry_s=retry_s) if self.owns_store else uri
        self.store.ensure_model(stamp)
        self.sampling = sampling
        self.flush_rows = flush_rows
        self.video_vectors = video_vectors or VideoVectors()
        self.pending: dict[str, _Pending] = {}
        # finished videos: a late row of one (a failed video's frames still in flight through another
        # encoder actor, a retried task's repeat) must not start a new, never-complete entry
        self.done_ids: set[str] = set()
        self.buffered = 0
        self.expected = expected  # videos in the job: once all are written, release the store at once
        self.finished = 0
        self.hooks = hooks or WriterHooks()
        self.merge_similar = merge_similar

    def __call__(self, batch: dict) -> dict:
        self._absorb(batch)
        done = [vid for vid, p in self.pending.items() if p.complete()]
        if done or self.buffered >= self.flush_rows:
            self.hooks.reached("before_frames")
            self._flush_frames(done if self.buffered < self.flush_rows else list(self.pending))
            self.hooks.reached("after_frames")
        rows = [self._finish(vid) for vid in done]
        # after the frames: a video row marks a durable, complete video
        self.store.upsert_videos([r.as_dict() for r in rows])
        if rows:
            self.hooks.reached("after_videos")
        self.finished += len(rows)
        if self.owns_store and self.expected is not None and self.finished >= self.expected and not self.pending:
            # Milvus Lite holds a per-process lock; Ray may keep this actor alive after the job, so free
            # the store now for the driver (search right after indexing) or the next job.
            self.store.close()
        return results_to_batch([r.result() for r in rows])

    def _absorb(self, batch: dict) -> None:
        frames, records = from_batch(batch)
        for r in records:
            if r.video_id in self.done_ids:
                continue
            p = self.pending.setdefault(r.video_id, _Pending(r.path))
            if isinstance(r, VideoEnd):
                p.end = r
            elif isinstance(r, EncodeFailure):
                p.encode_error = p.encode_error or r.error
        for i in range(len(frames)):
            vid = str(frames.video_id[i])
            if vid in self.done_ids:
                continue
            p = self.pending.setdefault(vid, _Pending(str(frames.path[i])))
            idx = int(frames.idx[i])
            if idx in p.frames:
                continue  # a retried upstream task repeated this row
            p.frames[idx] = (
                float(frames.t[i]),
                float(frames.t_start[i]),
                float(frames.t_end[i]),
                np.array(frames.payload[i], dtype=np.float32),
            )
            p.unflushed.append(idx)
            self.buffered += 1

    def _flush_frames(self, video_ids: list[str]) -> None:
        for vid in video_ids:
            p = self.pending[vid]
            if not p.unflushed or p.failed:
                continue
            idx = np.array(sorted(p.unflushed))
            rows = [p.frames[i] for i in idx]
            table = FrameTable.of(
                idx,
                np.array([r[0] for r in rows]),
                np.array([r[1] for r in rows]),
                np.array([r[2] for r in rows]),
                np.stack([r[3] for r in rows]),
            )
            if self.merge_similar is not None:
                table = merge_similar(table, self.merge_similar)
            self.store.insert_frames(vid, table)
            p.flushed += len(idx)
            self.buffered -= len(idx)
            p.unflushed.clear()

    def _finish(self, vid: str) -> VideoRow:
        p = self.pending.pop(vid)
        self.done_ids.add(vid)
        end = p.end
        self.buffered -= len(p.unflushed)
        row = VideoRow(
            video_id=vid,
            path=p.path,
            status="ok",
            stage="",
            error="",
            n_frames=0,
            duration=end.duration,
            lost=end.lost,
            decoder=end.decoder,
            sampling=self.sampling,
            metadata=end.metadata,
        )
        if p.failed:
            if p.flushed:
                self.store.delete_frames([vid])
            stage = "decode" if not end.ok else "encode"
            return replace(row, status="failed", stage=stage, error=end.error or p.encode_error)
        order = sorted(p.frames)
        vectors = np.stack([p.frames[i][3] for i in order])  # [T, D] raw, in time order
        return replace(row, n_frames=len(order), **self.video_vectors(vectors))

    def close(self) -> None:
        self.store.close()
