"""Plug-in CLIPRerank for other systems' result lists (TREC or JSONL runs), with or without a vidseek index.

For each query, the first ``depth`` candidates get a fine score S = max over sampled frames of
cos(text, frame), fused with the run's own score M: α·minmax(M) + (1−α)·minmax(S) (``vidseek.retrieval.fusion``).
Frame evidence comes from the store when the candidate is indexed there (matched by video id, path, or file
stem), otherwise its file is decoded and encoded on the fly and the frame vectors are cached on disk.
A candidate without evidence keeps its rank slot and is reported in a warning — never dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidseek.operators.decode import DecodeError
from vidseek.operators.encode import LoadedClip, encode_texts
from vidseek.operators.file_embedder import FileEmbedder
from vidseek.operators.isolated_decode import DecodeLimit
from vidseek.retrieval.datasets import find_video
from vidseek.retrieval.fusion import rerank as fuse_order
from vidseek.retrieval.params import DEFAULTS
from vidseek.retrieval.runfiles import Candidate, RunQuery
from vidseek.store.video_store import VideoLookup, VideoStore, check_same_model

log = logging.getLogger(__name__)
DEFAULT_CACHE = Path.home() / ".cache" / "vidseek" / "frames"


class FrameEvidence:
    """Raw frame vectors [T, D] per candidate, from a store and/or decoded files (cached)."""

    def __init__(
        self,
        clip: LoadedClip,
        store: VideoStore | None = None,
        video_root: str | Path | None = None,
        sampling: str = "fps:1",
        cache_dir: str | Path | None = DEFAULT_CACHE,
        decode_limit: DecodeLimit = DecodeLimit(),
        files: bool = True,
        lookup: VideoLookup | None = None,
    ):
        """``files=False``: evidence from the store only, candidates' paths are never opened (the service).
        ``lookup``: a prebuilt id/path/stem index of the store (one per store version)."""
        if store is not None:
            check_same_model(store.model_stamp() or {}, clip.stamp(), store.uri)
        self.clip, self.store, self.sampling = clip, store, sampling
        self.video_root = Path(video_root) if video_root else None
        self.embed = FileEmbedder(clip, sampling, cache_dir, decode_limit)  # files no store holds
        self.files = files
        self._lookup = lookup
        self.stats = {"store": 0, "decoded": 0, "cached": 0, "missing": 0}

    def fetch(self, candidates: list[Candidate]) -> list[np.ndarray | None]:
        out: list[np.ndarray | None] = [None] * len(candidates)
        if self.store is not None:
            self._lookup = self._lookup or VideoLookup(self.store)
            want = {}
            for i, c in enumerate(candidates):
                vid = self._lookup.find(c.id) or self._lookup.find(c.path)
                if vid:
                    want[i] = vid
            frames = self.store.frames_of(sorted(set(want.values()))) if want else {}
            for i, vid in want.items():
                if vid in frames:
                    out[i] = frames[vid].vectors
                    self.stats["store"] += 1
        for i, c in enumerate(candidates):
            if out[i] is None:
                out[i] = self._from_file(c)
        return out

    def _from_file(self, c: Candidate) -> np.ndarray | None:
        if not self.files:
            self.stats["missing"] += 1
            return None
        path = Path(c.path) if c.path else (find_video(self.video_root, c.id) if self.video_root else None)
        if path is None or not path.is_file():
            self.stats["missing"] += 1
            return None
        before = dict(self.embed.stats)
        try:
            return self.embed(path)
        except DecodeError as e:
            log.warning("no frame evidence for %s: %s", c.id, e)
            self.stats["missing"] += 1
            return None
        finally:
            for k in ("decoded", "cached"):
                self.stats[k] += self.embed.stats[k] - before[k]


@dataclass
class RerankReport:
    queries: int = 0
    rescored: int = 0
    without_evidence: list[str] = field(default_factory=list)
    evidence: dict[str, int] = field(default_factory=dict)


def max_frame_score(text: np.ndarray, frames: np.ndarray | None) -> float:
    """max_k cos(text, frame_k); NaN when there are no frames."""
    if frames is None or not len(frames):
        return float("nan")
    f = frames / np.maximum(np.linalg.norm(frames, axis=1, keepdims=True), 1e-12)
    t = text / max(float(np.linalg.norm(text)), 1e-12)
    return float((f @ t).max())


def rerank_run(
    queries: list[RunQuery],
    evidence: FrameEvidence,
    alpha: float = DEFAULTS.alpha,
    depth: int = DEFAULTS.depth,
    query_text: dict[str, str] | None = None,
) -> tuple[list[RunQuery], RerankReport]:
    """Reranked copies of ``queries`` (same candidates, new order) and a report of what was used."""
    report = RerankReport()
    out = []
    for q in queries:
        text = q.query or (query_text or {}).get(q.query_id)
        if not text:
            raise ValueError(f"query {q.query_id!r} has no text: pass --queries with a qid<TAB>text file")
        head = q.candidates[:depth]
        tvec = encode_texts(evidence.clip, [text])[0]
        fine = np.array([max_frame_score(tvec, f) for f in evidence.fetch(head)])  # [k]
        initial = np.array([c.score for c in head], dtype=np.float64)
        order, fused = fuse_order(initial, fine, alpha, depth)
        missing = [head[i].id for i in np.flatnonzero(np.isnan(fine))]
        if missing:
            report.without_evidence.extend(f"{q.query_id}:{m}" for m in missing)
        new = []
        for i in order:
            c = head[i]
            extra = dict(c.extra, initial_score=c.score)
            if not np.isnan(fine[i]):
                extra.update(fine_score=float(fine[i]), fused_score=float(fused[i]))
            new.append(Candidate(c.id, c.score, c.path, extra))
        out.append(RunQuery(q.query_id, q.query, new + q.candidates[depth:]))
        report.queries += 1
        report.rescored += len(head) - len(missing)
    if report.without_evidence:
        log.warning(
            "%d candidates had no frame evidence and kept their rank (e.g. %s)",
            len(report.without_evidence),
            ", ".join(report.without_evidence[:5]),
        )
    report.evidence = dict(evidence.stats)
    return out, report
