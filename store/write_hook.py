"""One door for every write a store makes to Milvus: an optional lock, then the write announced.

Every client write in store/ runs inside ``WriteHook.writing(video_ids, rows)`` (tests/test_store_writes.py
fails on one that does not). While it runs it holds ``lock`` when the store has one (the service shares one
store between searches and an ingest job); after a write that returned, ``generation`` is bumped and each
of ``listeners`` is told which videos changed and the video rows written (the service's frame cache evicts
those videos, its replica re-reads them, its ingest job counts the rows). Reads take no lock: Milvus serves
them concurrently. A write that raised announces nothing, as before the hook existed.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator

WriteListener = Callable[[list[str], list[dict]], None]


class WriteHook:
    def __init__(self, lock: threading.RLock | None = None):
        self.lock = lock  # reentrant: a write method may call another inside its own write
        self.generation = 0  # writes announced so far; a reader compares it before and after a fetch
        self.listeners: list[WriteListener] = []

    @contextmanager
    def writing(self, video_ids: list[str], rows: list[dict] | None = None) -> Iterator[None]:
        """Hold the lock (if any) for the write inside; once it returns, bump ``generation`` and tell the
        listeners ``video_ids`` (the videos whose rows changed; [] for the meta collection) and ``rows``."""
        with self.lock if self.lock is not None else nullcontext():
            yield
            self.generation += 1  # before the listeners run: see ThreadSafeFrameCache.get
            for fn in list(self.listeners):
                fn(video_ids, rows or [])
