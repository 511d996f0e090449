"""A local, memory-mapped copy of a store's frame tables: rescoring reads the candidates' frames from disk pages.

Design and sizes: docs/scale.md, "Rescoring reads: the frame mirror".

Exact query-weighted pooling needs every frame vector of every candidate (docs/methods.md), and on a Milvus
server those vectors are most of a search's time: ~150 candidates × 30 frames × 512 floats is 9.4 MB that
the server reads, serialises and sends per query (bench/RESULTS.md). The ANN stages need no vectors back, so
vidseek keeps the rescoring features beside the searcher, as a feature store: the frame tables of the
store's finished videos, float32, byte for byte what ``VideoStore.frames_of`` returns, in append-only
segments of ``.npy`` files that the searcher memory-maps. A candidate's frames are then a slice of a page
the OS already holds; a video the mirror does not have is read from the store as before.

Layout of a mirror directory::

    mirror.json           what it mirrors: store URI and prefix, model stamp, thinning record, vector width
    index.sqlite          video_id → (segment, first row, rows)
    seg-000001/{idx,t,t_start,t_end,merged,vectors}.npy   one segment per sync batch, written then renamed

Freshness: the mirror is the store as of its last ``sync()``, like the in-memory replica
(retrieval/replica.py). ``sync`` adds finished videos it lacks and forgets those no longer ``ok``; a store
re-created under another model, thinned to another threshold, or of another vector width is mirrored again
from scratch. Writes made through this process (the service's store) call ``mark_changed(ids)``, which sends
those videos back to the store until the next sync. A video's frames are final under its id (the id hashes
the file's identity), so an entry never needs re-reading; the one exception, ``vidseek thin`` run from
another process, is seen by the next ``sync`` through the store's thinning record. Cost: 4 bytes × D per
frame row on disk (2 KiB at 512-d: 600 MB for 300k frames), paged in by the OS as candidates are read.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from vidseek.operators.frame_table import FrameTable
from vidseek.retrieval.frame_cache import Admit
from vidseek.retrieval.query_cache import stamp_key
from vidseek.store.video_store import VideoStore

log = logging.getLogger(__name__)

FORMAT = 1
COLUMNS = ("idx", "t", "t_start", "t_end", "merged", "vectors")


@dataclass
class MirrorSync:
    """What one ``sync`` did: videos added and forgotten, videos and frame rows held after it, and whether it
    started over (another model, thinning or vector width in the store)."""

    added: int = 0
    removed: int = 0
    videos: int = 0
    rows: int = 0
    rebuilt: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


class FrameMirror:
    """``FrameMirror(directory, store).sync()``, then ``get(ids)`` as the searcher's frame source."""

    def __init__(self, directory: str | Path, store: VideoStore, fallback=None, batch_videos: int = 256):
        """``fallback``: where videos the mirror lacks are read (``get(ids, admit)``, e.g. the searcher's
        frame cache); None: the store's ``frames_of``."""
        self.dir = Path(directory)
        self.store = store
        self.fallback = fallback
        self.batch_videos = batch_videos
        self._lock = threading.Lock()
        self._where: dict[str, tuple[int, int, int]] = {}  # video_id → (segment, first row, rows)
        self._segments: dict[int, dict[str, np.ndarray]] = {}
        self.hits = self.misses = 0
        self.dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.dir / "index.sqlite", check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS at_rows (video_id TEXT PRIMARY KEY, seg INT, lo INT, n INT)")
        if self._meta() == self._wanted_meta():
            self._where = {v: (s, lo, n) for v, s, lo, n in self._db.execute("SELECT * FROM at_rows")}

    # -- what it mirrors ---------------------------------------------------------------------------
    def _wanted_meta(self) -> dict:
        stamp = self.store.model_stamp() or {}
        return {
            "format": FORMAT,
            "store": {"uri": self.store.uri, "prefix": self.store.prefix},
            "model": stamp_key(stamp) if stamp else None,
            "thinning": self.store.thinning(),
            "dim": self.store.dim,
        }

    def _meta(self) -> dict | None:
        path = self.dir / "mirror.json"
        return json.loads(path.read_text()) if path.exists() else None

    # -- sync --------------------------------------------------------------------------------------
    def sync(self) -> MirrorSync:
        """Bring the mirror to the store's finished videos (one listing of ids, then their frames in batches)."""
        report = MirrorSync()
        wanted = self._wanted_meta()
        if self._meta() != wanted:
            self._clear()
            (self.dir / "mirror.json").write_text(json.dumps(wanted, sort_keys=True))
            report.rebuilt = True
        ok = {r["video_id"] for r in self.store.video_records('status == "ok"', ["video_id"])}
        gone = [v for v in self._where if v not in ok]
        self._forget(gone)
        report.removed = len(gone)
        todo = sorted(ok - set(self._where))
        for i in range(0, len(todo), self.batch_videos):
            tables = self.store.frames_of(todo[i : i + self.batch_videos])
            self._append({v: tables[v] for v in todo[i : i + self.batch_videos] if v in tables})
            report.added += len(tables)
        self._drop_unused_segments()
        report.videos = len(self._where)
        report.rows = sum(n for _, _, n in self._where.values())
        return report

    def _clear(self) -> None:
        with self._lock:
            self._where, self._segments = {}, {}
            self._db.execute("DELETE FROM at_rows")
            self._db.commit()
        for seg in self.dir.glob("seg-*"):
            shutil.rmtree(seg, ignore_errors=True)

    def _append(self, tables: dict[str, FrameTable]) -> None:
        """One new segment holding these tables, written to a temporary name and renamed, then indexed."""
        if not tables:
            return
        seg = max([int(p.name[4:]) for p in self.dir.glob("seg-[0-9]*")] + [0]) + 1
        tmp, final = self.dir / f".seg-{seg:06d}.tmp", self.dir / f"seg-{seg:06d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        order = list(tables)
        for col in COLUMNS:
            np.save(tmp / f"{col}.npy", np.concatenate([getattr(tables[v], col) for v in order]))
        os.replace(tmp, final)
        where, lo = {}, 0
        for v in order:
            where[v] = (seg, lo, len(tables[v]))
            lo += len(tables[v])
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO at_rows VALUES (?, ?, ?, ?)", [(v, *w) for v, w in where.items()]
            )
            self._db.commit()
            self._where.update(where)

    def _forget(self, video_ids: Iterable[str]) -> None:
        ids = [v for v in video_ids if v in self._where]
        if not ids:
            return
        with self._lock:
            for v in ids:
                self._where.pop(v, None)
            self._db.executemany("DELETE FROM at_rows WHERE video_id = ?", [(v,) for v in ids])
            self._db.commit()

    def _drop_unused_segments(self) -> None:
        """Segments no video points into any more (every video of theirs forgotten), and half-written ones."""
        used = {s for s, _, _ in self._where.values()}
        for path in self.dir.glob(".seg-*.tmp"):
            shutil.rmtree(path, ignore_errors=True)
        for path in self.dir.glob("seg-[0-9]*"):
            seg = int(path.name[4:])
            if seg not in used:
                with self._lock:
                    self._segments.pop(seg, None)
                shutil.rmtree(path, ignore_errors=True)

    def mark_changed(self, video_ids: list[str], rows: list[dict] | None = None) -> None:
        """Written through this process: read these videos from the store until the next ``sync``."""
        self._forget(video_ids)

    # -- reads -------------------------------------------------------------------------------------
    def _segment(self, seg: int) -> dict[str, np.ndarray]:
        cols = self._segments.get(seg)
        if cols is None:
            path = self.dir / f"seg-{seg:06d}"
            cols = {c: np.load(path / f"{c}.npy", mmap_mode="r") for c in COLUMNS}
            self._segments[seg] = cols
        return cols

    def read(self, video_ids: list[str]) -> dict[str, FrameTable]:
        """The mirrored tables among these videos (copies of the mapped pages; absent ids are left out)."""
        out = {}
        with self._lock:
            where = [(v, self._where.get(v)) for v in video_ids]
            for v, at in where:
                if at is None:
                    continue
                seg, lo, n = at
                cols = self._segment(seg)
                out[v] = FrameTable(
                    *(np.array(cols[c][lo : lo + n]) for c in ("idx", "t", "t_start", "t_end")),
                    np.array(cols["vectors"][lo : lo + n]),
                    np.array(cols["merged"][lo : lo + n]),
                )
        return out

    def get(self, video_ids: list[str], admit: Admit | None = None) -> dict[str, FrameTable]:
        """The frame-cache contract (retrieval/frame_cache.py): mirrored videos from disk, the rest from
        ``fallback`` (or the store)."""
        out = self.read(video_ids)
        missing = [v for v in video_ids if v not in out]
        self.hits += len(out)
        self.misses += len(missing)
        if missing:
            out.update(self.fallback.get(missing, admit) if self.fallback else self.store.frames_of(missing))
        return out

    def __len__(self) -> int:
        return len(self._where)

    def video_ids(self) -> list[str]:
        """The mirrored videos' ids, sorted."""
        with self._lock:
            return sorted(self._where)

    def close(self) -> None:
        with self._lock:
            self._segments = {}
            self._db.close()


class PeriodicSync:
    """Re-syncs a mirror every ``every_s`` seconds in a daemon thread (a long-lived service's mirror), so videos
    indexed by other processes move from the store's fetch path to the mirror; a failed sync (a server that
    stopped answering) is logged and tried again next time."""

    def __init__(self, mirror: FrameMirror, every_s: float):
        self.mirror, self.every_s = mirror, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vidseek-mirror-sync", daemon=True)

    def start(self) -> "PeriodicSync":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                report = self.mirror.sync()
                if report.added or report.removed or report.rebuilt:
                    log.info("frame mirror %s: %s", self.mirror.dir, report.as_dict())
            except Exception as e:  # noqa: BLE001 — a sync must never stop the service
                log.warning(
                    "frame mirror %s: sync failed (%s: %s); next try in %g s",
                    self.mirror.dir,
                    type(e).__name__,
                    e,
                    self.every_s,
                )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every_s + 30)
