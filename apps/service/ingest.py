"""The service's frame cache (safe beside the ingest job's writes) and its one-at-a-time ingest jobs.

The service opens one ``VideoStore`` with a ``write_lock``: every write holds it and is announced to the
store's ``write_listeners`` (store/write_hook.py); the frame cache, the replica and the ingest job listen.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vidseek.operators.frame_table import FrameTable
from vidseek.pipeline.index_config import IndexConfig
from vidseek.retrieval.frame_cache import Admit, FrameCache, admitted
from vidseek.store.video_store import VideoStore

log = logging.getLogger(__name__)
GLOB_CHARS = set("*?[")


class ThreadSafeFrameCache(FrameCache):
    """The searcher's frame cache, safe under concurrent searches and writes.

    The cache lock covers bookkeeping only (fetches run outside it). Entries fetched while the store was
    written are not kept: they may hold part of a video that is being indexed.
    """

    def __init__(self, store: VideoStore, max_vectors: int = 500_000):
        super().__init__(store.frames_of, max_vectors)
        self.store = store
        self._lock = threading.Lock()
        store.write_listeners.append(lambda ids, rows: self.evict(ids))

    def get(self, video_ids: list[str], admit: Admit | None = None) -> dict[str, FrameTable]:
        with self._lock:
            generation = self.store.generation
            out, missing = self._cached(video_ids)
        if missing:
            fetched = self.fetch(missing)
            out.update(fetched)
            keep = admitted(fetched, admit)
            with self._lock:
                if self.store.generation == generation:  # no write since: safe to keep
                    self._keep(keep)
        return out

    def evict(self, video_ids: list[str]) -> None:
        with self._lock:
            for vid in video_ids:
                entry = self._entries.pop(vid, None)
                if entry is not None:
                    self._size -= len(entry)


class IngestError(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass
class IngestJob:
    id: str
    source: str
    options: dict
    state: str = "queued"  # queued | running | done | failed
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    discovered: int = 0
    to_index: int = 0
    written: int = 0
    failed: int = 0
    summary: dict | None = None
    error: str | None = None

    def as_dict(self) -> dict:
        d = {
            k: getattr(self, k)
            for k in (
                "id",
                "source",
                "options",
                "state",
                "created",
                "started",
                "finished",
                "discovered",
                "to_index",
                "summary",
                "error",
            )
        }
        d["progress"] = {
            "written": self.written,
            "failed": self.failed,
            "to_index": self.to_index,
            "fraction": round((self.written + self.failed) / self.to_index, 4) if self.to_index else 1.0,
        }
        return d


def _under(path: str, roots: list[str]) -> bool:
    real = os.path.realpath(path)
    return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


class IngestManager:
    """Runs ``index_fn(cfg, store=store)`` in a background thread, one job at a time."""

    def __init__(
        self,
        store: VideoStore,
        roots: list[str | Path],
        index_fn: Callable | None,
        model: str,
        pretrained: str | None,
        on_done: Callable[[IngestJob], None] | None = None,
        keep: int = 50,
    ):
        self.store = store
        self.roots = [os.path.realpath(r) for r in roots]
        self.index_fn = index_fn
        self.model, self.pretrained = model, pretrained
        self.on_done = on_done
        self.keep = keep
        self.jobs: OrderedDict[str, IngestJob] = OrderedDict()
        self._lock = threading.Lock()
        self._current: IngestJob | None = None
        store.write_listeners.append(self._count)

    def _count(self, ids: list[str], rows: list[dict]) -> None:
        job = self._current
        if job is not None and job.state == "running":
            for r in rows:
                if r.get("status", "ok") == "ok":
                    job.written += 1
                else:
                    job.failed += 1

    def resolve_source(self, source: str) -> tuple[str, list]:
        """The SOURCE as an absolute path and the videos it lists; refused unless all lie under the roots."""
        from vidseek.pipeline.sources import SourceError, discover

        if not self.roots:
            raise IngestError(
                403,
                "ingest is disabled: start the service with --ingest-root DIR "
                "(sources must lie under one), or index with `vidseek index` while it is stopped",
            )
        p = Path(source)
        if not p.is_absolute():
            p = Path(self.roots[0]) / p
        parts, fixed = p.parts, []
        for part in parts:  # the part of a glob before its first wildcard must already lie under a root
            if GLOB_CHARS & set(part):
                break
            fixed.append(part)
        if not _under(str(Path(*fixed)), self.roots):
            raise IngestError(403, "source is outside the ingest roots of this service")
        try:
            sources = discover(str(p))
        except (SourceError, OSError) as e:
            raise IngestError(400, f"bad source: {e}") from None
        outside = [s for s in sources if not _under(s.path, self.roots)]
        if outside:
            raise IngestError(
                403,
                f"{len(outside)} of the source's files resolve outside the ingest roots "
                "(symlinks or list-file entries); they are not indexed by this service",
            )
        if not sources:
            raise IngestError(400, "no video files found in the source")
        return str(p), sources

    def start(
        self,
        source: str,
        sampling: str = IndexConfig.sampling,
        prune: bool = False,
        retry_failed: bool = False,
        max_failures: int | None = None,
    ) -> IngestJob:
        from vidseek.operators.sampling import SamplingPlan
        from vidseek.pipeline.index_job import IndexConfig, plan_job

        try:
            SamplingPlan.parse(sampling)
        except ValueError as e:
            raise IngestError(422, str(e)) from None
        with self._lock:
            if self._current is not None:
                raise IngestError(
                    409,
                    f"busy: ingest job {self._current.id} is {self._current.state}; "
                    f"poll GET /ingest/{self._current.id} and retry when it is done",
                )
            path, sources = self.resolve_source(source)
            stamp = self.store.model_stamp()
            model, pretrained = (stamp["model"], stamp.get("pretrained")) if stamp else (self.model, self.pretrained)
            options = {
                "sampling": sampling,
                "prune": prune,
                "retry_failed": retry_failed,
                "max_failures": max_failures,
                "model": model,
            }
            job = IngestJob(uuid.uuid4().hex, path, options, discovered=len(sources))
            job.to_index = len(plan_job(self.store, sources, prune, retry_failed).todo) if stamp else len(sources)
            cfg = IndexConfig(
                source=path,
                store=self.store.uri,
                model=model,
                pretrained=pretrained,
                sampling=sampling,
                prune=prune,
                retry_failed=retry_failed,
                max_failures=max_failures,
                prefix=self.store.prefix,
                progress=False,
            )
            self._current = job
            self.jobs[job.id] = job
            while len(self.jobs) > self.keep:
                self.jobs.popitem(last=False)
        threading.Thread(target=self._run, args=(job, cfg), name=f"ingest-{job.id[:8]}", daemon=True).start()
        return job

    def _run(self, job: IngestJob, cfg) -> None:
        index_fn = self.index_fn
        if index_fn is None:
            from vidseek.pipeline.index_job import run_index as index_fn
        job.state, job.started = "running", time.time()
        try:
            summary = index_fn(cfg, store=self.store)
            job.summary = summary.as_dict() if hasattr(summary, "as_dict") else dict(summary)
            job.state = "done"
        except Exception as e:  # noqa: BLE001 — any failure ends this job, never the service
            log.exception("ingest job %s failed", job.id)
            job.error, job.state = f"{type(e).__name__}: {e}", "failed"
        finally:
            job.finished = time.time()
            with self._lock:
                self._current = None
            if self.on_done is not None:
                try:
                    self.on_done(job)
                except Exception:  # noqa: BLE001
                    log.exception("after ingest job %s", job.id)

    def get(self, job_id: str) -> IngestJob | None:
        return self.jobs.get(job_id)

    def wait(self, job_id: str, timeout: float = 60.0) -> IngestJob:
        """Block until the job is done or failed (tests, scripts)."""
        deadline = time.monotonic() + timeout
        job = self.jobs[job_id]
        while job.state in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.05)
        return job
