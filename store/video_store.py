"""The vidseek store: three Milvus collections behind one small API, same code for Lite and a server.

``VideoStore`` is the facade the other layers use; it is composed of parts that share one ``StoreContext``
(store/context.py):

    store/connection.py         the client: Milvus Lite (a local path, one process at a time) or a server
                                (``http(s)://host:19530``, retried through restarts: store/server_retry.py)
    store/collections.py        schemas and creation, loading, the model stamp, the thinning record
    store/frame_io.py           frame rows: insert, upsert, delete, read per video (FrameTables)
    store/video_io.py           video rows: upsert, delete, read by id or filter, counts
    store/search_strategies.py  video search, best frame per video (grouped in Milvus or in the client)
    store/write_hook.py         every write: an optional lock, then ``generation`` bumped and listeners told

The collections' layout is store/layout.py. The names other modules import from here stay importable here.
"""

from __future__ import annotations

import threading
from typing import Iterable, Iterator

import numpy as np

from vidseek.operators.frame_table import FrameTable
from vidseek.store.collections import Collections, check_same_model
from vidseek.store.connection import (
    LITE_GRPC_OPTIONS,
    close_client,
    is_server_uri,
    open_client,
    release_lite,
    server_caps,
)
from vidseek.store.context import StoreContext
from vidseek.store.errors import ModelMismatchError, StoreBusyError, StoreError, StoreUnavailableError
from vidseek.store.filters import quote
from vidseek.store.frame_groups import (
    group_frame_columns,
    group_frame_rows,
    group_stored_columns,
    group_stored_rows,
    table_of,
)
from vidseek.store.frame_index import FrameIndex
from vidseek.store.frame_index import frame_index as frame_index_of
from vidseek.store.frame_io import FrameIO, frame_pk, frame_rows
from vidseek.store.layout import (
    CONSISTENCY,
    ERR_LEN,
    FRAME_FIELDS,
    FRAME_READ,
    ID_LEN,
    PAGE,
    PATH_LEN,
    QUERY_LIMIT,
    SEARCH_CONSISTENCY,
    VIDEO_FIELDS,
)
from vidseek.store.lookup import VideoLookup
from vidseek.store.search_strategies import GROUP_FANOUT, StoreSearch, best_per_video
from vidseek.store.server_caps import ServerCaps
from vidseek.store.video_io import VideoIO
from vidseek.store.write_hook import WriteHook, WriteListener

__all__ = [
    "CONSISTENCY",
    "ERR_LEN",
    "FRAME_FIELDS",
    "FRAME_READ",
    "GROUP_FANOUT",
    "ID_LEN",
    "LITE_GRPC_OPTIONS",
    "PAGE",
    "PATH_LEN",
    "QUERY_LIMIT",
    "SEARCH_CONSISTENCY",
    "VIDEO_FIELDS",
    "ModelMismatchError",
    "StoreBusyError",
    "StoreError",
    "StoreUnavailableError",
    "VideoLookup",
    "VideoStore",
    "best_per_video",
    "check_same_model",
    "frame_pk",
    "frame_rows",
    "group_frame_columns",
    "group_frame_rows",
    "group_stored_columns",
    "group_stored_rows",
    "is_server_uri",
    "release_lite",
    "table_of",
]


def _shared(name: str, doc: str) -> property:
    """An attribute of the store that lives in its context, so that every part sees a change to it."""
    return property(lambda self: getattr(self._ctx, name), lambda self, v: setattr(self._ctx, name, v), doc=doc)


class VideoStore:
    client = _shared("client", "the Milvus client (a RetryingClient for a server)")
    caps = _shared("caps", "what the server can do (store/server_caps.py)")
    dim = _shared("dim", "the stored vectors' dimension; None while the store is empty")
    has_learned = _shared("has_learned", "whether the videos collection holds learned_vec")
    has_merged = _shared("has_merged", "whether the frames collection holds merged (stores before thinning do not)")
    frame_index = _shared("frame_index", "the frame vectors' index type (store/frame_index.py)")
    requested_index = _shared("requested_index", "the frame index asked for, checked against an existing store's")
    search_consistency = _shared("search_consistency", "the search path's reads (see SEARCH_CONSISTENCY)")

    def __init__(
        self,
        uri: str = "./vidseek.db",
        prefix: str = "vidseek",
        token: str = "",
        lock_wait_s: float = 15.0,
        caps: ServerCaps | None = None,
        retry_s: float = 15.0,
        write_retry_s: float | None = None,
        frame_index: str | None = None,
        write_lock: threading.RLock | None = None,
    ):
        """``caps``: what the server can do; read from its version when not given (tests pass 2.3's to run
        the fallbacks on Lite). ``frame_index``: the frame vectors' index type for a new store
        (store/frame_index.py; None: HNSW), checked against an existing store's. ``retry_s``: how long a
        server that stops answering is waited for, retrying with backoff, before a call fails with
        ``StoreUnavailableError`` (store/server_retry.py);
        ``write_retry_s``: the same for writes, when it differs (a service answers searches fast but lets its
        ingest job wait as long as an index job would). ``write_lock``: held by every write
        (store/write_hook.py), for a store shared by threads that write (the service's)."""
        self.uri, self.prefix = uri, prefix
        self.videos, self.frames, self.meta = f"{prefix}_videos", f"{prefix}_frames", f"{prefix}_meta"
        client = open_client(uri, token, lock_wait_s, retry_s, write_retry_s, lambda c: self._collections.reload(c))
        caps = caps if caps is not None else server_caps(client, uri)
        requested = frame_index_of(frame_index) if frame_index else None
        self._ctx = StoreContext(
            uri,
            prefix,
            client,
            caps,
            frame_index=requested or FrameIndex("HNSW"),
            requested_index=requested,
            hook=WriteHook(write_lock),
            has_learned=caps.multi_vector,
        )
        self._collections = Collections(self._ctx)
        self._frames = FrameIO(self._ctx)
        self._videos = VideoIO(self._ctx)
        self._search = StoreSearch(self._ctx)
        if client.has_collection(self.meta):
            self._collections.load()

    # -- lifecycle, write hook --------------------------------------------------------------------
    def close(self) -> None:
        """Close the client and, for Milvus Lite, release the file lock now (not at process exit)."""
        close_client(self.client, self.uri)

    def __enter__(self) -> "VideoStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def write_lock(self) -> threading.RLock | None:
        return self._ctx.hook.lock

    @property
    def generation(self) -> int:
        """How many writes this store object has made (store/write_hook.py)."""
        return self._ctx.hook.generation

    @property
    def write_listeners(self) -> list[WriteListener]:
        """Called after each write with (video ids changed, video rows written) (store/write_hook.py)."""
        return self._ctx.hook.listeners

    # -- collections: model stamp, thinning record (store/collections.py) --------------------------
    def model_stamp(self) -> dict | None:
        return self._collections.model_stamp()

    def ensure_model(self, stamp: dict) -> None:
        """Create the collections for ``stamp``'s embedding space, or check an existing store matches it."""
        self._collections.ensure_model(stamp)

    def thinning(self) -> dict | None:
        """``{"threshold": T}`` when every video of this store is thinned at T; None for an unthinned store."""
        return self._collections.thinning()

    def record_thinning(self, threshold: float) -> None:
        self._collections.record_thinning(threshold)

    def require_merged(self) -> None:
        self._ctx.require_merged()

    def require_ready(self) -> None:
        self._ctx.require_ready()

    def no_learned_error(self) -> StoreError:
        return self._ctx.no_learned_error()

    # -- frame rows (store/frame_io.py) -----------------------------------------------------------
    def insert_frames(self, video_id: str, table: FrameTable) -> int:
        """Frame rows of one video (raw vectors; ``merged`` > 1 only in a store that records it)."""
        return self._frames.insert_frames(video_id, table)

    def upsert_frames(self, video_id: str, table: FrameTable) -> int:
        """Replace frame rows by key (thinning rewrites a run's first row as the merged row)."""
        return self._frames.upsert_frames(video_id, table)

    def delete_frame_rows(self, pks: list[str]) -> None:
        self._frames.delete_frame_rows(pks)

    def delete_frames(self, video_ids: Iterable[str]) -> None:
        self._frames.delete_frames(video_ids)

    def frame_keys(self, video_ids: list[str]) -> dict[str, list[str]]:
        """Every frame row's key per video, merged members not yet deleted included (``vidseek thin``)."""
        return self._frames.frame_keys(video_ids)

    def frame_read_fields(self) -> list[str]:
        return self._frames.frame_read_fields()

    def frames_of(self, video_ids: list[str]) -> dict[str, FrameTable]:
        """Every frame row of these videos, one table each (raw vectors)."""
        return self._frames.frames_of(video_ids)

    def count_frames(self, video_id: str | None = None) -> int:
        return self.count(self.frames, f"video_id == {quote(video_id)}" if video_id else "")

    # -- video rows (store/video_io.py) -----------------------------------------------------------
    def upsert_videos(self, rows: list[dict]) -> None:
        """Video rows; missing vectors become zeros (error records, or no learned head)."""
        self._videos.upsert_videos(rows)

    def delete_videos(self, video_ids: Iterable[str]) -> None:
        """All rows (video and frames) of these videos."""
        self._videos.delete_videos(video_ids)

    def iter_query(self, collection: str, filter: str, fields: list[str]) -> Iterator[dict]:
        return self._videos.iter_query(collection, filter, fields)

    def video_records(self, filter: str = 'video_id != ""', fields: list[str] | None = None) -> list[dict]:
        return self._videos.video_records(filter, fields)

    def get_videos(self, video_ids: list[str], fields: list[str] | None = None) -> dict[str, dict]:
        return self._videos.get_videos(video_ids, fields)

    def count(self, collection: str | None = None, filter: str = "") -> int:
        return self._videos.count(collection, filter)

    # -- search (store/search_strategies.py) ------------------------------------------------------
    def search_videos(
        self, queries: np.ndarray, k: int, field: str = "mean_vec", filter: str = "", fields: list[str] | None = None
    ) -> list[list[dict]]:
        """ANN over video vectors; queries [Q, D] unit. Per query: [{video_id, score, ...fields}]."""
        return self._search.search_videos(queries, k, field, filter, fields)

    @property
    def frame_grouping(self) -> str:
        """Where a grouped frame search groups: "server" (``group_by_field``) or "client" (store/server_caps.py)."""
        return self._search.frame_grouping

    def search_frames_grouped(self, queries: np.ndarray, k: int, filter: str = "") -> list[list[dict]]:
        """Best frame per video (max pooling): [{video_id, score, t, t_start, t_end}], best first."""
        return self._search.search_frames_grouped(queries, k, filter)
