"""The rows of the index job, in one module: its inputs, the rows between its stages, and its outputs.

Code on either side of a stage sees typed values:

    VideoSource   one input: a video file's absolute path, its id, and a list file's other columns
    FrameRows     sampled frames of one or more videos: keys (video_id, idx), times, and a payload —
                  uint8 frames [n, S, S, 3] out of the decoder, float32 embeddings [n, D] out of the encoder
    VideoEnd      the decoder's last word on one video: ok or failed (why), frames emitted, duration, losses
    EncodeFailure the encoder could not encode some of a video's frames (e.g. CUDA out of memory)
    VideoRow      what the writer puts into the store's videos collection for one finished video
    VideoResult   the writer's outcome for one finished video, which the driver counts

Ray Data carries one columnar schema per stream, so these cross a stage as batches that only this module's
converters know: the inputs as ``source_items`` (for ``from_items``) / ``sources_from_batch``; the stages'
rows as ``to_batch`` / ``from_batch`` (a ``kind`` column, the frame columns, and a ``record`` column holding a
record's fields as JSON; a record row fills the frame columns with zeros, which nothing outside this module
reads); the writer's outcomes as ``results_to_batch`` / ``results_from_batch``. A ``VideoRow`` goes to the
store as ``as_dict()``, the store's row format.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Union

import numpy as np

FRAME, END, ENCODE_FAILURE = "frame", "end", "encode_failure"
PAYLOAD_COLUMNS = ("frame", "embedding")  # before and after the encoder


@dataclass(frozen=True)
class VideoSource:
    """One input of the index job (pipeline/sources.py ``discover``)."""

    path: str  # absolute
    video_id: str
    metadata: dict = field(default_factory=dict, hash=False, compare=False)  # a list file's other columns

    @property
    def extra(self) -> str:
        """``metadata`` as the stages carry it: JSON, "" for none (passed through to ``VideoEnd.extra``)."""
        return json.dumps(self.metadata) if self.metadata else ""


def source_items(sources: list[VideoSource]) -> list[dict]:
    """The job's input rows for ``ray.data.from_items``: ``{path, video_id, extra}``."""
    return [{"path": s.path, "video_id": s.video_id, "extra": s.extra} for s in sources]


def sources_from_batch(batch: dict) -> list[VideoSource]:
    """Inverse of ``source_items`` over a batch of input rows (``video_id`` defaults to the path, ``extra``
    to none)."""
    paths = [str(p) for p in batch["path"]]
    ids = [str(v) for v in batch.get("video_id", paths)]
    extras = [str(x) for x in batch.get("extra", [""] * len(paths))]
    return [VideoSource(p, v, json.loads(x) if x else {}) for p, v, x in zip(paths, ids, extras)]


@dataclass(frozen=True)
class VideoEnd:
    """One per video, after its frame rows (they may still be in flight downstream)."""

    video_id: str
    path: str
    status: str  # "ok" | "failed"
    error: str = ""  # why it failed, naming the file
    n_frames: int = 0  # frame rows emitted for this video
    duration: float = 0.0  # seconds
    lost: int = 0  # frames lost to bad packets
    decoder: str = ""  # "decord" | "pyav"
    extra: str = ""  # the input row's metadata (JSON), passed through untouched

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def metadata(self) -> dict:
        """The input's metadata, decoded from ``extra``."""
        return json.loads(self.extra) if self.extra else {}


@dataclass(frozen=True)
class EncodeFailure:
    video_id: str
    path: str
    error: str


Record = Union[VideoEnd, EncodeFailure]
_RECORD_KINDS = {VideoEnd: END, EncodeFailure: ENCODE_FAILURE}
_RECORD_TYPES = {kind: cls for cls, kind in _RECORD_KINDS.items()}


@dataclass
class FrameRows:
    video_id: np.ndarray  # [n] str (object)
    path: np.ndarray  # [n] str (object)
    idx: np.ndarray  # [n] int32: sample index within its video, stable across re-runs (a row's key)
    t: np.ndarray  # [n] float32: presentation time (s) of the decoded frame
    t_start: np.ndarray  # [n] float32: the sample's span
    t_end: np.ndarray  # [n] float32
    payload: np.ndarray  # [n, S, S, 3] uint8 frames, or [n, D] float32 embeddings

    def __len__(self) -> int:
        return len(self.idx)

    @classmethod
    def of_video(
        cls,
        video_id: str,
        path: str,
        idx: np.ndarray,
        t: np.ndarray,
        t_start: np.ndarray,
        t_end: np.ndarray,
        payload: np.ndarray,
    ) -> "FrameRows":
        n = len(idx)
        return cls(
            np.full(n, video_id, dtype=object),
            np.full(n, path, dtype=object),
            idx.astype(np.int32),
            t.astype(np.float32),
            t_start.astype(np.float32),
            t_end.astype(np.float32),
            payload,
        )

    @classmethod
    def empty(cls, payload_shape: tuple[int, ...], dtype: np.dtype) -> "FrameRows":
        """No rows, but a payload of the right trailing shape (a batch of records only still has one)."""
        z = np.zeros(0, np.float32)
        return cls(
            np.zeros(0, dtype=object),
            np.zeros(0, dtype=object),
            np.zeros(0, np.int32),
            z,
            z,
            z,
            np.zeros((0, *payload_shape), dtype),
        )

    def with_payload(self, payload: np.ndarray) -> "FrameRows":
        return replace(self, payload=payload)

    def take(self, sel: np.ndarray) -> "FrameRows":
        return FrameRows(
            *(
                np.asarray(a)[sel]
                for a in (self.video_id, self.path, self.idx, self.t, self.t_start, self.t_end, self.payload)
            )
        )

    def videos(self) -> list[tuple[str, str]]:
        """(video_id, path) of each video with rows here, in order of first appearance."""
        seen: dict[str, str] = {}
        for vid, path in zip(self.video_id, self.path):
            seen.setdefault(str(vid), str(path))
        return list(seen.items())


def to_batch(frames: FrameRows, records: list[Record] = (), payload: str = "frame") -> dict:
    """The wire batch: frame rows, then one row per record (its frame columns zero)."""
    if payload not in PAYLOAD_COLUMNS:
        raise ValueError(f"payload column must be one of {PAYLOAD_COLUMNS}, got {payload!r}")
    n, m = len(frames), len(records)
    kinds = [FRAME] * n + [_RECORD_KINDS[type(r)] for r in records]
    filler = np.zeros((m, *frames.payload.shape[1:]), frames.payload.dtype)
    return {
        "kind": np.array(kinds, dtype=object),
        "video_id": np.concatenate([frames.video_id, np.array([r.video_id for r in records], dtype=object)]),
        "path": np.concatenate([frames.path, np.array([r.path for r in records], dtype=object)]),
        "idx": np.concatenate([frames.idx, np.full(m, -1, np.int32)]).astype(np.int32),
        "t": np.concatenate([frames.t, np.zeros(m, np.float32)]).astype(np.float32),
        "t_start": np.concatenate([frames.t_start, np.zeros(m, np.float32)]).astype(np.float32),
        "t_end": np.concatenate([frames.t_end, np.zeros(m, np.float32)]).astype(np.float32),
        payload: np.concatenate([frames.payload, filler]) if m else frames.payload,
        "record": np.array([""] * n + [json.dumps(asdict(r)) for r in records], dtype=object),
    }


def from_batch(batch: dict) -> tuple[FrameRows, list[Record]]:
    """Inverse of ``to_batch``: the frame rows (with whichever payload the batch has) and the records."""
    payload = next((c for c in PAYLOAD_COLUMNS if c in batch), None)
    if payload is None or "kind" not in batch:
        raise ValueError(f"not a stage batch (columns {sorted(batch)}); build one with vidseek.operators.rows.to_batch")
    kind = np.asarray(batch["kind"])
    is_frame = kind == FRAME
    sel = np.flatnonzero(is_frame)
    frames = FrameRows(
        *(np.asarray(batch[c])[sel] for c in ("video_id", "path", "idx", "t", "t_start", "t_end", payload))
    )
    records = [
        _RECORD_TYPES[str(k)](**json.loads(r)) for k, r in zip(kind[~is_frame], np.asarray(batch["record"])[~is_frame])
    ]
    return frames, records


@dataclass(frozen=True)
class VideoResult:
    """The writer's outcome for one finished video: what the driver counts into the job's summary."""

    video_id: str
    path: str
    status: str  # "ok" | "failed"
    stage: str = ""  # where it failed: "decode" | "encode"
    error: str = ""
    n_frames: int = 0
    duration: float = 0.0
    lost: int = 0
    decoder: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


RESULT_COLUMNS = tuple(f.name for f in fields(VideoResult))
_RESULT_TEXT = ("video_id", "path", "status", "stage", "error", "decoder")  # object columns on the wire


def results_to_batch(results: list[VideoResult]) -> dict:
    """The writer's output batch: one column per ``VideoResult`` field (``RESULT_COLUMNS``)."""
    return {
        c: np.array([getattr(r, c) for r in results], dtype=object if c in _RESULT_TEXT else None)
        for c in RESULT_COLUMNS
    }


def results_from_batch(batch: dict) -> list[VideoResult]:
    """Inverse of ``results_to_batch``."""
    cols = {c: np.asarray(batch[c]) for c in RESULT_COLUMNS}
    return [
        VideoResult(
            video_id=str(cols["video_id"][i]),
            path=str(cols["path"][i]),
            status=str(cols["status"][i]),
            stage=str(cols["stage"][i]),
            error=str(cols["error"][i]),
            n_frames=int(cols["n_frames"][i]),
            duration=float(cols["duration"][i]),
            lost=int(cols["lost"][i]),
            decoder=str(cols["decoder"][i]),
        )
        for i in range(len(cols["video_id"]))
    ]


_OPTIONAL_ROW_FIELDS = ("mean_vec", "learned_vec", "learned_head")


@dataclass(frozen=True, eq=False)  # eq=False: its vectors are arrays, which do not compare to one bool
class VideoRow:
    """One row of the store's videos collection (store/video_store.py ``upsert_videos`` takes ``as_dict()``).

    The vectors are the job's pooling step's (operators/video_vectors.py): ``mean_vec`` always for an ok
    video, ``learned_vec`` and ``learned_head`` when the job has a head. Left None, they are not in the
    store row, and the store writes its defaults (zero vectors, no head)."""

    video_id: str
    path: str
    status: str  # "ok" | "failed"
    stage: str  # where it failed: "decode" | "encode"; "" when ok
    error: str
    n_frames: int
    duration: float
    lost: int
    decoder: str
    sampling: str
    metadata: dict
    mean_vec: np.ndarray | None = None
    learned_vec: np.ndarray | None = None
    learned_head: str | None = None

    @classmethod
    def from_record(cls, record: dict) -> "VideoRow":
        """A row read back from the store (``get_videos`` of every ``VideoRow`` field it holds)."""
        return cls(**record)

    def as_dict(self) -> dict:
        """The store's row: every field, less the optional ones left None."""
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in row.items() if not (k in _OPTIONAL_ROW_FIELDS and v is None)}

    def result(self) -> VideoResult:
        return VideoResult(
            self.video_id,
            self.path,
            self.status,
            self.stage,
            self.error,
            self.n_frames,
            self.duration,
            self.lost,
            self.decoder,
        )
