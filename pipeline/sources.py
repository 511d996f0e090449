"""What to index: a directory (recursive), a glob, or a list file (txt / csv / jsonl), as ``VideoSource``s
(operators/rows.py); or objects by URL (``s3://bucket/prefix/``, a URL glob, or list-file lines that are URLs:
operators/remote_source.py).

``video_id`` is deterministic from the file's identity (absolute path, size, mtime; for an object: URL, size,
and its version id or ETag from the listing, no byte read): re-running a job maps to the same keys, and a
changed file gets a new id (its old rows are replaced).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
from pathlib import Path

from vidseek.operators.remote_source import (  # object_video_id: importable from here too
    RemoteError,
    StorageOptions,
    is_glob,
    is_url,
    list_objects,
    object_info,
    object_video_id,
)
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


def _hash(ident: str) -> str:
    return hashlib.sha1(ident.encode("utf-8", "surrogateescape")).hexdigest()[:20]


def video_id_for(path: str | Path, options: StorageOptions | None = None) -> str:
    """sha1 of absolute path + size + mtime_ns (20 hex chars); a missing file hashes its path alone. A URL:
    ``object_video_id`` of its ``info()`` (a HEAD request)."""
    if is_url(path):
        try:
            return object_video_id(object_info(str(path), options), str(path))
        except RemoteError:
            return object_video_id(None, str(path))
    p = Path(path).absolute()
    try:
        st = p.stat()
        ident = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        ident = f"{p}|missing"
    return _hash(ident)


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
    return [(p if is_url(p) else (base / p) if not os.path.isabs(p) else Path(p), meta) for p, meta in rows]


def _remote(source: str, options: StorageOptions) -> list[VideoSource]:
    """Objects under a URL prefix or glob (one listing: ids without a request per object), or one object."""
    try:
        if source.endswith("/") or is_glob(source):
            objects = list_objects(source, options, VIDEO_EXTENSIONS)
            if not objects:
                raise SourceError(
                    f"{source}: no video objects there (extensions: {', '.join(sorted(VIDEO_EXTENSIONS))})"
                )
        else:
            objects = [object_info(source, options)]
    except RemoteError as e:
        raise SourceError(str(e)) from None
    return [VideoSource(o.url, object_video_id(o, o.url), {}) for o in objects]


def _listed_object(url: str, meta: dict, options: StorageOptions) -> VideoSource:
    """A list file's URL line: its id from ``info()``; one that cannot be read becomes that video's error."""
    try:
        obj = object_info(url, options)
    except RemoteError:
        obj = None  # the decoder records why (not found, access denied) as this video's error
    return VideoSource(url, object_video_id(obj, url), meta)


def discover(source: str | Path, storage_options: StorageOptions | dict | None = None) -> list[VideoSource]:
    """All videos of SOURCE, de-duplicated by absolute path (or URL), in a stable order."""
    src = str(source)
    options = StorageOptions.parse(storage_options)
    if is_url(src):
        return _dedup(_remote(src, options))
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
        ap = path if is_url(path) else str(path.absolute())
        if ap in seen:
            continue
        seen.add(ap)
        out.append(_listed_object(ap, meta, options) if is_url(ap) else VideoSource(ap, video_id_for(ap), meta))
    return out


def _dedup(sources: list[VideoSource]) -> list[VideoSource]:
    seen: set[str] = set()
    return [s for s in sources if not (s.path in seen or seen.add(s.path))]
