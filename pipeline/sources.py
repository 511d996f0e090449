"""What to index: a directory (recursive), a glob, or a list file (txt / csv / jsonl), as ``VideoSource``s
(operators/rows.py).

``video_id`` is deterministic from the file's identity (absolute path, size, mtime): re-running a job maps
to the same keys, and a changed file gets a new id (its old rows are replaced).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
from pathlib import Path

from vidseek.operators.rows import VideoSource  # the input row type; importable from here too

VIDEO_EXTENSIONS = {
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".mpg",
    ".mpeg",
    ".ts",
    ".flv",
    ".wmv",
    ".3gp",
    ".ogv",
}
LIST_EXTENSIONS = {".txt", ".csv", ".jsonl"}


class SourceError(ValueError):
    pass


def video_id_for(path: str | Path) -> str:
    """sha1 of absolute path + size + mtime_ns (20 hex chars); a missing file hashes its path alone."""
    p = Path(path).absolute()
    try:
        st = p.stat()
        ident = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        ident = f"{p}|missing"
    return hashlib.sha1(ident.encode("utf-8", "surrogateescape")).hexdigest()[:20]


def _walk(root: Path) -> list[Path]:
    """Video files under ``root``; follows directory symlinks once each (loops are cut, not followed)."""
    out, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        for name in sorted(filenames + [d for d in dirnames if Path(d).suffix.lower() in VIDEO_EXTENSIONS]):
            if Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                out.append(Path(dirpath) / name)
        # a directory named like a video (x.mp4/) is listed above so it becomes an error record
        dirnames[:] = [d for d in dirnames if Path(d).suffix.lower() not in VIDEO_EXTENSIONS]
    return out


def _read_list(path: Path) -> list[tuple[Path, dict]]:
    base = path.parent
    rows: list[tuple[str, dict]] = []
    ext = path.suffix.lower()
    with open(path, newline="", encoding="utf-8") as f:
        if ext == ".txt":
            rows = [(line.strip(), {}) for line in f if line.strip() and not line.lstrip().startswith("#")]
        elif ext == ".csv":
            reader = csv.DictReader(f)
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise SourceError(f"{path}: a CSV list needs a 'path' column (found {reader.fieldnames})")
            rows = [(r.pop("path"), {k: v for k, v in r.items() if k}) for r in reader]
        else:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise SourceError(f"{path}:{n}: not valid JSON ({e.msg})") from e
                if not isinstance(rec, dict) or "path" not in rec:
                    raise SourceError(f"{path}:{n}: each line needs a 'path' key")
                p = rec.pop("path")
                rows.append((p, rec))
    return [((base / p) if not os.path.isabs(p) else Path(p), meta) for p, meta in rows]


def discover(source: str | Path) -> list[VideoSource]:
    """All videos of SOURCE, de-duplicated by absolute path, in a stable order."""
    src = str(source)
    p = Path(src)
    if any(ch in src for ch in "*?[") and not p.exists():
        items = [
            (Path(x), {})
            for x in sorted(glob.glob(src, recursive=True))
            if not Path(x).is_dir() or Path(x).suffix.lower() in VIDEO_EXTENSIONS
        ]
        if not items:
            raise SourceError(f"glob {src!r} matches no files")
    elif p.is_dir():
        items = [(x, {}) for x in _walk(p)]
    elif p.is_file() and p.suffix.lower() in LIST_EXTENSIONS:
        items = _read_list(p)
    elif p.is_file():
        items = [(p, {})]
    else:
        raise SourceError(
            f"SOURCE {src!r} does not exist: pass a directory, a glob, a video, or a list file "
            "(.txt/.csv/.jsonl with a path column)"
        )
    out, seen = [], set()
    for path, meta in items:
        ap = str(path.absolute())
        if ap in seen:
            continue
        seen.add(ap)
        out.append(VideoSource(ap, video_id_for(ap), meta))
    return out
