"""An LRU cache of candidates' frame vectors for the searcher.

Fetching frame rows dominates a search on Milvus Lite (its engine costs ~0.1 ms per returned row). A video's
frames never change under its id: ``video_id`` hashes the file's identity, a changed file gets a new id,
and a re-index of a failed video only happens while it has no ``ok`` row (the search never asks for it).
So cached entries need no invalidation; deleted videos simply stop being asked for and age out.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterable

from vidseek.operators.frame_table import FrameTable

Admit = Callable[[list[str]], Iterable[str]]


def admitted(fetched: dict[str, FrameTable], admit: Admit | None) -> dict[str, FrameTable]:
    if admit is None:
        return fetched
    return {v: fetched[v] for v in admit(list(fetched)) if v in fetched}


class FrameCache:
    def __init__(self, fetch: Callable[[list[str]], dict[str, FrameTable]], max_vectors: int = 500_000):
        self.fetch = fetch
        self.max_vectors = max_vectors
        self._entries: OrderedDict[str, FrameTable] = OrderedDict()
        self._size = 0
        self.hits = self.misses = 0

    def get(self, video_ids: list[str], admit: Admit | None = None) -> dict[str, FrameTable]:
        """Frames of these videos, from the cache or fetched. ``admit(fetched ids)``: which of the fetched may
        be kept (the searcher fetches frames while it still reads the videos' status; only finished videos'
        frames are final under their id). None: all."""
        out, missing = self._cached(video_ids)
        if missing:
            fetched = self.fetch(missing)
            out.update(fetched)
            self._keep(admitted(fetched, admit))
        return out

    def _cached(self, video_ids: list[str]) -> tuple[dict[str, FrameTable], list[str]]:
        """Entries already held (marked recently used) and the ids still to fetch."""
        out, missing = {}, []
        for vid in video_ids:
            entry = self._entries.get(vid)
            if entry is None:
                missing.append(vid)
            else:
                self._entries.move_to_end(vid)
                out[vid] = entry
        self.hits += len(out)
        self.misses += len(missing)
        return out, missing

    def _keep(self, fetched: dict[str, FrameTable]) -> None:
        for vid, entry in fetched.items():
            self._put(vid, entry)

    def _put(self, vid: str, entry: FrameTable) -> None:
        n = len(entry)
        if n > self.max_vectors:
            return
        self._entries[vid] = entry
        self._size += n
        while self._size > self.max_vectors:
            _, old = self._entries.popitem(last=False)
            self._size -= len(old)

    def __len__(self) -> int:
        return len(self._entries)
