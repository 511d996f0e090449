"""Caption datasets for evaluation and training: (video, caption) pairs from common annotation layouts.

Supported layouts (``load_captions`` picks one from the extension and, for CSV, the header):
- MSR-VTT official JSON (``MSRVTT_data.json``): ``{"videos": [{"video_id": "video0", "split": "train", ...}],
  "sentences": [{"video_id": "video0", "caption": "...", "sen_id": 0}, ...]}`` — one pair per sentence.
  ``split`` filters on the videos' "split" field (train / validate / test); ``video_ids`` keeps a given set
  (e.g. the ``video_id`` column of CLIP4Clip's ``MSRVTT_train.9k.csv``).
- MSR-VTT 1k-A test CSV (``MSRVTT_JSFUSION_test.csv``, as CLIP4Clip's test loader reads it): header
  ``key,vid_key,video_id,sentence``; one caption per video, 1,000 rows.
- Plain CSV with columns ``video,caption`` and JSONL lines ``{"video": ..., "caption": ...}``; with
  ``start,end`` too (seconds; Charades-STA style), each pair carries the moment it describes, and
  evaluation reports moment accuracy (retrieval/moments.py).

``video`` is an id (``video7020``) or a path. ``resolve_videos`` maps ids to files under a root, trying the
id itself and then common extensions (MSR-VTT ships ``<video_id>.mp4``), and fails listing missing ids.
``index_pairs`` turns pairs into (unique videos, ground-truth column per caption) for
``metrics.ranks_from_scores``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".3gp", ".flv")
MSRVTT_CSV_COLUMNS = ("key", "vid_key", "video_id", "sentence")


@dataclass(frozen=True)
class CaptionPair:
    video: str
    caption: str
    spans: tuple[tuple[float, float], ...] = ()  # where in the video the caption holds (seconds); () = unknown


def load_msrvtt_json(
    path: str | Path, split: str | None = None, video_ids: Iterable[str] | None = None
) -> list[CaptionPair]:
    """Pairs from the official MSR-VTT JSON, in sentence order, optionally filtered by split / ids."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from e
    if not isinstance(data, dict) or "sentences" not in data:
        raise ValueError(f'{path}: not an MSR-VTT annotation file (need a "sentences" list)')
    keep = None if video_ids is None else set(video_ids)
    if split is not None:
        splits = {v["video_id"]: v.get("split") for v in data.get("videos", [])}
        if not splits:
            raise ValueError(f'{path}: split={split!r} needs the "videos" list with a "split" field')
        in_split = {vid for vid, s in splits.items() if s == split}
        if not in_split:
            raise ValueError(f"{path}: no video has split {split!r}; found {sorted(set(splits.values()))}")
        keep = in_split if keep is None else keep & in_split
    out = []
    for i, s in enumerate(data["sentences"]):
        if "video_id" not in s or "caption" not in s:
            raise ValueError(f'{path}: sentence {i} lacks "video_id" or "caption"')
        if keep is None or s["video_id"] in keep:
            out.append(CaptionPair(str(s["video_id"]), str(s["caption"]).strip()))
    return out


def _load_csv(path: Path) -> list[CaptionPair]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        reader.fieldnames = cols
        if set(MSRVTT_CSV_COLUMNS) <= set(cols):
            vcol, ccol = "video_id", "sentence"
        elif {"video", "caption"} <= set(cols):
            vcol, ccol = "video", "caption"
        else:
            raise ValueError(
                f"{path}: CSV header {cols} has neither 'video,caption' nor MSR-VTT's {','.join(MSRVTT_CSV_COLUMNS)}"
            )
        timed = {"start", "end"} <= set(cols)
        out = []
        for no, row in enumerate(reader, start=2):
            video, caption = (row.get(vcol) or "").strip(), (row.get(ccol) or "").strip()
            if not video or not caption:
                raise ValueError(f"{path}:{no}: empty {vcol!r} or {ccol!r}")
            spans = (_span(row.get("start"), row.get("end"), f"{path}:{no}"),) if timed else ()
            out.append(CaptionPair(video, caption, spans))
    return out


def _span(start, end, where: str) -> tuple[float, float]:
    """(start, end) seconds of a timed caption; a clear error for what is not one."""
    try:
        a, b = float(start), float(end)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: start/end must be seconds, got {start!r}, {end!r}") from None
    if not (0 <= a < b):
        raise ValueError(f"{where}: need 0 <= start < end, got start={a}, end={b}")
    return a, b


def _load_jsonl(path: Path) -> list[CaptionPair]:
    out = []
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{no}: invalid JSON ({e.msg})") from e
            if not isinstance(obj, dict) or not obj.get("video") or not obj.get("caption"):
                raise ValueError(f'{path}:{no}: need an object with non-empty "video" and "caption"')
            spans = (_span(obj.get("start"), obj.get("end"), f"{path}:{no}"),) if "start" in obj or "end" in obj else ()
            out.append(CaptionPair(str(obj["video"]), str(obj["caption"]).strip(), spans))
    return out


def load_captions(path: str | Path, split: str | None = None) -> list[CaptionPair]:
    """Pairs from any supported layout (.json MSR-VTT, .csv MSR-VTT 1k-A or plain, .jsonl)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if split is not None and suffix != ".json":
        raise ValueError(f"{path}: split= only applies to the MSR-VTT JSON layout")
    if suffix == ".json":
        pairs = load_msrvtt_json(path, split=split)
    elif suffix == ".csv":
        pairs = _load_csv(path)
    elif suffix == ".jsonl":
        pairs = _load_jsonl(path)
    else:
        raise ValueError(f"{path}: unknown caption file type {suffix!r}; use .json, .csv or .jsonl")
    if not pairs:
        raise ValueError(f"{path}: no caption pairs")
    return pairs


def find_video(root: str | Path, video: str, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> Path | None:
    """The file for an id or relative path under root (exact name first, then id + extension)."""
    root = Path(root)
    candidates = [Path(video)] if Path(video).is_absolute() else [root / video]
    candidates += [root / f"{video}{ext}" for ext in extensions]
    return next((p for p in candidates if p.is_file()), None)


def resolve_videos(
    pairs: Sequence[CaptionPair],
    video_root: str | Path,
    source: str | Path | None = None,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> list[CaptionPair]:
    """Pairs with ``video`` replaced by the file path; FileNotFoundError listing the first missing ids."""
    root = Path(video_root)
    if not root.is_dir():
        raise FileNotFoundError(f"video root {root} is not a directory")
    found: dict[str, Path | None] = {}
    for p in pairs:
        if p.video not in found:
            found[p.video] = find_video(root, p.video, extensions)
    missing = [v for v, f in found.items() if f is None]
    if missing:
        where = f" (dataset {source})" if source is not None else ""
        raise FileNotFoundError(
            f"{len(missing)} of {len(found)} videos{where} not found under {root} "
            f"(tried the name and {', '.join(extensions)}); first missing: {missing[:10]}"
        )
    return [CaptionPair(str(found[p.video]), p.caption, p.spans) for p in pairs]


def index_pairs(pairs: Sequence[CaptionPair]) -> tuple[list[str], np.ndarray]:
    """Unique videos in first-appearance order and, per caption, its video's column: gt [Q] int."""
    col: dict[str, int] = {}
    gt = np.array([col.setdefault(p.video, len(col)) for p in pairs], dtype=np.int64)  # [Q]
    return list(col), gt
