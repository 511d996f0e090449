"""The service's shared state: one store connection, the model and searcher, caches, ingest jobs."""

from __future__ import annotations

import logging
import os
import re
import threading

from fastapi import HTTPException

from vidseek.apps.service.ingest import IngestManager, ThreadSafeFrameCache
from vidseek.apps.service.media import ThumbnailCache
from vidseek.apps.service.schemas import Limits
from vidseek.operators.remote_source import RemoteError, StorageOptions, is_url, object_info
from vidseek.store.video_store import VIDEO_FIELDS, VideoStore

log = logging.getLogger(__name__)
VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

SERVER_RETRY_S = 5.0  # searches: answer 503 soon
SERVER_WRITE_RETRY_S = 60.0  # ingest writes: ride out a restart, as an index job does


class Service:
    """State shared by the routes: one store connection, the model, the searcher, caches, ingest jobs."""

    def __init__(
        self,
        store_uri: str,
        clip,
        limits: Limits,
        ingest_roots,
        index_fn,
        model: str,
        pretrained: str | None,
        lock_wait_s: float,
        prefix: str,
        verify_files: bool = True,
        in_memory: bool = False,
        frame_mirror: str | None = None,
        mirror_sync_s: float = 60.0,
    ):
        self.limits = limits
        self.storage = StorageOptions()  # for videos indexed by URL (create_app sets the service's)
        self.in_memory = in_memory
        self.frame_mirror, self.mirror_sync_s = frame_mirror, mirror_sync_s
        self._mirror_sync = None
        self.verify_files = verify_files
        # a request waits at most this long for a server store that stopped answering, then gets a 503
        # searches and an ingest job share it: writes hold its lock and are announced (store/write_hook.py)
        self.store = VideoStore(
            store_uri,
            prefix,
            lock_wait_s=lock_wait_s,
            retry_s=SERVER_RETRY_S,
            write_retry_s=SERVER_WRITE_RETRY_S,
            write_lock=threading.RLock(),
        )
        self.clip = clip
        self._searcher = None
        self._searcher_lock = threading.Lock()
        self._lookup: tuple[int, object] | None = None
        self._frames_at: int | None = None  # the store generation at which it last held frame vectors
        self.thumbs = ThumbnailCache()
        self.decodes = threading.BoundedSemaphore(limits.max_decodes)
        self.ingest = IngestManager(
            self.store,
            list(ingest_roots or []),
            index_fn,
            clip.name if clip is not None else model,
            clip.pretrained if clip is not None else pretrained,
        )
        if self.store.dim is not None:
            try:
                self.searcher()  # load the model now (once), and fail at startup on a model mismatch
            except BaseException:
                self.store.close()
                raise

    def close(self) -> None:
        if self._mirror_sync is not None:
            self._mirror_sync.stop()
        self.store.close()

    def searcher(self):
        if self._searcher is None:
            with self._searcher_lock:
                if self._searcher is None:
                    if self.store.dim is None:
                        raise HTTPException(
                            503,
                            "the store is empty: POST /ingest a source first "
                            "(or run `vidseek index` before starting the service)",
                        )
                    from vidseek.retrieval.search import Searcher

                    s = Searcher(
                        self.store,
                        clip=self.clip,
                        in_memory=self.in_memory,
                        frame_cache=ThreadSafeFrameCache,
                        warn=False,  # each search response carries model_warning instead
                        frame_mirror=self._open_mirror(),
                    )
                    if s.replica is not None:
                        self.store.write_listeners.append(s.replica.mark_changed)  # re-read written videos
                    self.clip = s.clip
                    self._searcher = s
        return self._searcher

    def has_frames(self) -> bool:
        """Whether the store holds frame vectors (what an image or clip query compares with). A yes holds until
        this process next writes to the store (its ``generation``); a no is asked again on every call, as
        another process may be indexing into a server store."""
        generation = self.store.generation  # read first: a write during the count makes the answer stale at once
        if self._frames_at == generation:
            return True
        if not self.store.count_frames():
            return False
        self._frames_at = generation
        return True

    def _open_mirror(self):
        """The frame mirror (retrieval/frame_mirror.py), synced now and then every ``mirror_sync_s``; videos
        written through this service are read from the store until the next sync."""
        if not self.frame_mirror:
            return None
        from vidseek.retrieval.frame_mirror import FrameMirror, PeriodicSync

        mirror = FrameMirror(self.frame_mirror, self.store)
        report = mirror.sync()
        log.info("frame mirror %s: %s", self.frame_mirror, report.as_dict())
        self.store.write_listeners.append(mirror.mark_changed)
        if self.mirror_sync_s > 0:
            self._mirror_sync = PeriodicSync(mirror, self.mirror_sync_s).start()
        return mirror

    def evidence(self):
        """Frame evidence from the store only: client paths are matched against indexed paths, never opened."""
        from vidseek.retrieval.rerank import FrameEvidence
        from vidseek.store.video_store import VideoLookup

        searcher = self.searcher()
        cached = self._lookup
        if cached is None or cached[0] != self.store.generation:
            generation = self.store.generation  # read first: a write during the build makes it stale at once
            cached = (generation, VideoLookup(self.store))
            self._lookup = cached
        # one id/path/stem index per store version, not one per request; never a client's file
        return FrameEvidence(searcher.clip, self.store, cache_dir=None, files=False, lookup=cached[1])

    def video(self, video_id: str, fields: list[str] | None = None) -> dict:
        if not VIDEO_ID.match(video_id) or self.store.dim is None:
            raise HTTPException(404, "no video with this id")
        row = self.store.get_videos([video_id], fields or VIDEO_FIELDS).get(video_id)
        if row is None:
            raise HTTPException(404, "no video with this id")
        return row

    def video_file(self, video_id: str) -> tuple[str, dict]:
        """The recorded path of an indexed (status ok) video, if it is still the file that was indexed: the
        id hashes the file's path, size and mtime, so a file replaced or changed since (or a symlink swapped
        to point elsewhere) is not served."""
        from vidseek.pipeline.sources import video_id_for

        row = self.video(video_id, ["video_id", "path", "status", "duration"])
        if row["status"] != "ok":
            raise HTTPException(404, "this video was not indexed (status failed): no file or thumbnail")
        path = row["path"]
        if is_url(path):
            return path, self._object_row(video_id, path, row)
        if not path or not os.path.isfile(path):
            raise HTTPException(404, "the video's file is no longer there: re-index it")
        if self.verify_files and video_id_for(path) != video_id:
            raise HTTPException(404, "the video's file changed since it was indexed: re-index it")
        return path, row

    def _object_row(self, video_id: str, url: str, row: dict) -> dict:
        """The row with the object's ``size`` and ``version``, if the object is still the one indexed (its id
        hashes URL, size and ETag/version): 410 when it is gone, 409 when it changed, 502 when unreadable."""
        from vidseek.pipeline.sources import object_video_id

        try:
            obj = object_info(url, self.storage)
        except RemoteError as e:
            if e.kind == "missing":
                raise HTTPException(410, f"the video's object is gone ({url}): re-index the source") from None
            raise HTTPException(502, f"cannot check the video's object: {e}") from None
        if self.verify_files and object_video_id(obj, url) != video_id:
            raise HTTPException(
                409,
                f"the video's object changed since it was indexed (size or {obj.version.split('=')[0] or 'version'} differs): re-index it",
            )
        return {**row, "size": obj.size, "version": obj.version}


def media_urls(video_id: str, t: float | None = None) -> tuple[str, str]:
    thumb = f"/videos/{video_id}/thumbnail" + (f"?t={t:.3f}" if t is not None else "")
    return thumb, f"/videos/{video_id}/file"
