"""Copies in the library: pairs of stored videos that share a segment, from the stored frame vectors only.

Three steps, each a function of plain data so that a Ray driver can split the first and the last into tasks
(docs/copies.md, "On Ray"):

1. ``probe_videos(store, ids, params, known)`` — per video: one grouped frame ANN per frame (the store's
   frame index, ``k + 1`` best videos per frame). The videos with a frame at cosine ≥ ``probe_threshold``
   are the frame's near videos; a frame near ≥ ``generic_videos`` of them is *generic* (black, empty, a title
   card: it says nothing about which video it is from); every other frame counts a hit for each.
2. ``candidate_pairs(probes, videos, params)`` — pairs (a, b), a < b, with enough hits either way.
3. ``library_whitening(store, params)`` — the mean and covariance of (a sample of) the library's unit frame
   vectors: frames are compared after PCA whitening (docs/copies.md, "Whitening"), in which what all the
   library's frames share counts less and what tells one picture from another more.
4. ``align_pairs(store, pairs, generic, videos, params, whitening)`` — Smith-Waterman local alignment of
   the two whitened frame sequences (``retrieval/alignment.py``; generic frames neutral), kept when the
   aligned segment lasts ≥ ``min_seconds`` on both sides and its mean cosine is ≥ ``threshold``. Each kept
   pair is a ``CopyRecord`` with the aligned time ranges and its kind: ``duplicate`` (the segment covers ≥
   ``cover`` of both videos' content), ``excerpt`` (of the shorter one only) or ``segment`` (of neither).

``find_copies(store, …)`` runs them in this process. Nothing is decoded.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from vidseek.operators.frame_table import FrameTable
from vidseek.retrieval.alignment import AlignParams, local_alignment, unit_rows
from vidseek.store.video_store import VideoStore


@dataclass(frozen=True)
class CopyParams:
    min_seconds: float = 5.0  # shortest shared segment reported (on both sides)
    threshold: float = 0.7  # θ of the alignment: whitened frame cosine of "the same picture" (docs/copies.md)
    probe_threshold: float = 0.9  # plain cosine at which a probe's frame hit counts (candidates, generic)
    k: int = 20  # videos per frame in the candidate ANN
    gap: float = 0.02  # alignment cost of a skipped frame
    generic_videos: int = 20  # a frame near this many other videos (the whole probe, k) is generic
    cover: float = 0.8  # share of a video's content a segment must cover: a duplicate / an excerpt
    whiten: float = 1.0  # whitening power: 1 full PCA whitening, 0 plain cosines
    whiten_sample: int = 200_000  # library frames the whitening is estimated from
    batch: int = 256  # query frames per ANN call

    def validate(self) -> "CopyParams":
        if self.min_seconds <= 0 or not 0 < self.threshold < 1 or not 0 < self.probe_threshold < 1:
            raise ValueError("need min_seconds > 0, 0 < threshold < 1, 0 < probe_threshold < 1")
        if self.k < 1 or self.batch < 1 or self.generic_videos < 1 or self.whiten_sample < 1:
            raise ValueError("need k, batch, generic_videos and whiten_sample ≥ 1")
        if not 0 < self.cover <= 1 or self.gap < 0 or self.whiten < 0:
            raise ValueError("need 0 < cover ≤ 1, gap ≥ 0, whiten ≥ 0")
        return self

    def align(self) -> AlignParams:
        return AlignParams(threshold=self.threshold, gap=self.gap)


SHRINK = 1e-3  # whitening adds this share of the mean eigenvalue to each (directions the sample never varies in)


@dataclass
class Whitening:
    """x ↦ normalise((unit(x) − mean) · E · (λ + ε·mean λ)^(−p/2)): ``mean`` [D], ``matrix`` [D, D] = E·diag(…)."""

    mean: np.ndarray
    matrix: np.ndarray

    @classmethod
    def identity(cls, dim: int) -> "Whitening":
        return cls(np.zeros(dim, np.float32), np.eye(dim, dtype=np.float32))

    @classmethod
    def fit(cls, unit: np.ndarray, power: float = 1.0) -> "Whitening":
        """From unit frame vectors [N, D]; fewer than 2·D frames (or power 0) give plain cosines."""
        n, dim = unit.shape
        if power == 0 or n < 2 * dim:
            return cls.identity(dim)
        mean = unit.mean(0)
        eigval, eigvec = np.linalg.eigh(np.cov((unit - mean).T))
        scale = (np.maximum(eigval, 0) + SHRINK * max(float(eigval.mean()), 1e-12)) ** (-power / 2)
        return cls(mean.astype(np.float32), (eigvec * scale[None, :]).astype(np.float32))

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        return unit_rows((unit_rows(vectors) - self.mean) @ self.matrix)


def library_whitening(store: VideoStore, params: CopyParams) -> Whitening:
    """The whitening of the library's frames: estimated from its first ``whiten_sample`` frame rows."""
    if params.whiten == 0:
        return Whitening.identity(store.dim)
    rows = []
    for r in store.iter_query(store.frames, 'video_id != ""', ["vec"]):
        rows.append(r["vec"])
        if len(rows) >= params.whiten_sample:
            break
    unit = unit_rows(np.asarray(rows, np.float32)) if rows else np.zeros((0, store.dim), np.float32)
    return Whitening.fit(unit, params.whiten)


@dataclass
class CopyRecord:
    a: str  # video ids, a < b
    b: str
    a_path: str
    b_path: str
    a_start: float  # the aligned segment in a (s)
    a_end: float
    b_start: float  # and in b
    b_end: float
    score: float  # mean cosine of the aligned frame pairs, whitened (``CopyParams.whiten``)
    kind: str  # duplicate | excerpt | segment
    a_cover: float  # share of a's duration the segment covers
    b_cover: float
    frames: int  # aligned frame pairs

    def as_dict(self) -> dict:
        return asdict(self)


RECORD_FIELDS = [f.name for f in fields(CopyRecord)]


@dataclass
class Probe:
    """What the ANN pass found for one video: which of its frames are generic, and its hits per video."""

    generic: np.ndarray  # [T] bool, in the order of the video's frame table
    hits: dict[str, int] = field(default_factory=dict)


def library(store: VideoStore) -> dict[str, dict]:
    """The ok videos: {video_id: {"path", "duration"}}."""
    rows = store.video_records('status == "ok"', fields=["video_id", "path", "duration"])
    return {r["video_id"]: {"path": r["path"], "duration": float(r["duration"] or 0.0)} for r in rows}


def probe_videos(store: VideoStore, video_ids: list[str], params: CopyParams, known: Iterable[str]) -> dict:
    """``{video_id: Probe}`` for these videos (step 1). ``known``: the ids a hit may name (the ok videos)."""
    known = set(known)
    frames = store.frames_of(list(video_ids))
    out: dict[str, Probe] = {}
    for vid in video_ids:
        table = frames.get(vid)
        if table is None or not len(table):
            continue
        generic = np.zeros(len(table), bool)
        hits: Counter = Counter()
        unit = unit_rows(table.vectors)
        for i in range(0, len(unit), params.batch):
            res = store.search_frames_grouped(unit[i : i + params.batch], params.k + 1)
            for j, found in enumerate(res):
                near = {h["video_id"] for h in found if h["score"] >= params.probe_threshold} & known
                near.discard(vid)
                if len(near) >= params.generic_videos:
                    generic[i + j] = True
                else:
                    hits.update(near)
        out[vid] = Probe(generic, dict(hits))
    return out


def hits_needed(n_frames: int, duration: float, params: CopyParams) -> int:
    """Hits that make a candidate: a quarter of the frames a ``min_seconds`` segment of this video holds."""
    rate = n_frames / duration if duration > 0 else 1.0
    return max(2, math.ceil(params.min_seconds * rate / 4))


def candidate_pairs(probes: dict[str, Probe], videos: dict[str, dict], params: CopyParams) -> list[tuple[str, str]]:
    """Pairs (a, b), a < b, that one of the two found with enough hits (step 2), sorted."""
    pairs = set()
    for a, p in probes.items():
        need = hits_needed(len(p.generic), videos.get(a, {}).get("duration", 0.0), params)
        pairs.update((min(a, b), max(a, b)) for b, n in p.hits.items() if n >= need and b != a)
    return sorted(pairs)


def align_pairs(
    store: VideoStore,
    pairs: list[tuple[str, str]],
    generic: dict[str, np.ndarray],
    videos: dict[str, dict],
    params: CopyParams,
    whitening: Whitening | None = None,
) -> list[CopyRecord]:
    """The copy records among these pairs (step 4); ``generic``: each video's generic frames (``Probe``);
    ``whitening``: ``library_whitening``'s (None: plain cosines)."""
    frames = store.frames_of(sorted({v for p in pairs for v in p}))
    white = whitening or Whitening.identity(store.dim)
    seen = {v: white(t.vectors) for v, t in frames.items()}  # [T, D] unit, whitened
    out = []
    for a, b in pairs:
        if a not in frames or b not in frames:
            continue
        sim = seen[a] @ seen[b].T  # [Ta, Tb]
        rec = align_pair(a, b, sim, frames[a], frames[b], generic.get(a), generic.get(b), videos, params)
        if rec is not None:
            out.append(rec)
    return out


def align_pair(
    a: str,
    b: str,
    sim: np.ndarray,
    fa: FrameTable,
    fb: FrameTable,
    ga: np.ndarray | None,
    gb: np.ndarray | None,
    videos: dict[str, dict],
    params: CopyParams,
) -> CopyRecord | None:
    """One pair's record from their frames' cosines ``sim`` [Ta, Tb], or None when their best aligned segment
    is too short or too unlike."""
    al = local_alignment(sim, params.align(), ga, gb)
    if al is None or al.similarity < params.threshold:
        return None
    (a0, a1), (b0, b1) = al.a_span(fa), al.b_span(fb)
    if min(a1 - a0, b1 - b0) < params.min_seconds:
        return None
    la, lb = content_length(fa, ga, al.a), content_length(fb, gb, al.b)
    ca, cb = min(1.0, (a1 - a0) / la), min(1.0, (b1 - b0) / lb)
    return CopyRecord(
        a,
        b,
        videos.get(a, {}).get("path", ""),
        videos.get(b, {}).get("path", ""),
        round(a0, 3),
        round(a1, 3),
        round(b0, 3),
        round(b1, 3),
        round(al.similarity, 4),
        kind_of(ca, cb, la, lb, params.cover),
        round(ca, 3),
        round(cb, 3),
        al.matches,
    )


def content_length(frames: FrameTable, generic: np.ndarray | None, rows: tuple[int, int]) -> float:
    """Seconds of a video that a segment (rows ``lo..hi``) is measured against: the segment, plus every
    frame outside it that is not generic. Black or empty frames left out of a segment (a fade, an empty
    start) are no content the other video lacks, so a copy with a fade still covers its whole source."""
    lo, hi = rows
    spans = frames.t_end - frames.t_start
    outside = np.ones(len(frames), bool)
    outside[lo : hi + 1] = False
    if generic is not None:
        outside &= ~np.asarray(generic, bool)
    seg = float(frames.t_end[hi] - frames.t_start[lo])
    return max(seg + float(spans[outside].sum()), 1e-6)


def kind_of(cover_a: float, cover_b: float, len_a: float, len_b: float, cover: float) -> str:
    """duplicate (both covered ≥ ``cover``), excerpt (the shorter one only) or segment (neither)."""
    if cover_a >= cover and cover_b >= cover:
        return "duplicate"
    shorter = cover_a if len_a <= len_b else cover_b
    return "excerpt" if shorter >= cover else "segment"


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


Progress = Callable[[str, int, int], None]


def find_copies(
    store: VideoStore,
    min_seconds: float = 5.0,
    threshold: float = CopyParams.threshold,
    k: int = CopyParams.k,
    params: CopyParams | None = None,
    chunk: int = 64,
    progress: Progress | None = None,
) -> list[CopyRecord]:
    """Every pair of ok videos sharing a segment of ≥ ``min_seconds``, best score first (in this process).

    ``params`` overrides ``min_seconds``/``threshold``/``k``; ``progress(step, done, total)`` is called per
    chunk of videos (step "probe") and of pairs (step "align")."""
    params = (params or CopyParams(min_seconds=min_seconds, threshold=threshold, k=k)).validate()
    videos, probes = probe_library(store, params, chunk, progress)
    return copies_from_probes(store, videos, probes, params, library_whitening(store, params), chunk, progress)


def probe_library(
    store: VideoStore, params: CopyParams, chunk: int = 64, progress: Progress | None = None
) -> tuple[dict[str, dict], dict[str, Probe]]:
    """Step 1 over every ok video: (``library(store)``, ``{video_id: Probe}``). ``min_seconds``, ``cover``
    ``gap``, ``threshold`` and the whitening play no part in it: one probe serves any of them."""
    videos = library(store)
    ids = sorted(videos)
    probes: dict[str, Probe] = {}
    for n, part in enumerate(chunks(ids, chunk), 1):
        probes.update(probe_videos(store, part, params, videos))
        if progress:
            progress("probe", min(n * chunk, len(ids)), len(ids))
    return videos, probes


def copies_from_probes(
    store: VideoStore,
    videos: dict[str, dict],
    probes: dict[str, Probe],
    params: CopyParams,
    whitening: Whitening | None = None,
    chunk: int = 64,
    progress: Progress | None = None,
) -> list[CopyRecord]:
    """Steps 2 and 4: the copy records, best score first (``whitening``: step 3's)."""
    pairs = candidate_pairs(probes, videos, params)
    generic = {v: p.generic for v, p in probes.items()}
    records: list[CopyRecord] = []
    for n, part in enumerate(chunks(pairs, chunk), 1):
        records += align_pairs(store, part, generic, videos, params, whitening)
        if progress:
            progress("align", min(n * chunk, len(pairs)), len(pairs))
    return sorted(records, key=lambda r: (-r.score, r.a, r.b))


def format_copies(records: list[CopyRecord], fmt: str) -> str:
    """Records as ``csv`` (a header, one row each), ``jsonl`` (one object a line) or ``json`` (a list)."""
    rows = [r.as_dict() for r in records]
    if fmt == "csv":
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=RECORD_FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return out.getvalue()
    if fmt == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in rows)
    if fmt == "json":
        return json.dumps(rows, indent=1)
    raise ValueError(f"unknown copies format {fmt!r}: csv, jsonl or json")


def write_copies(records: list[CopyRecord], path: str | Path, fmt: str | None = None) -> None:
    """Records as ``.csv``, ``.jsonl`` or ``.json`` (``format_copies``), by ``fmt`` or else by the suffix
    (any other suffix: JSON)."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    fmt = fmt or (suffix if suffix in ("csv", "jsonl") else "json")
    path.write_text(format_copies(records, fmt), newline="")
