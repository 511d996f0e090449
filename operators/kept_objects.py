"""Opened objects kept for the next open of the same object version in this process, blocks and all.

A decode opens one object up to three times: the decode child's probe (the time limit needs the duration),
the decoder's probe and the decode itself (operators/isolated_decode.py, operators/decode.py). Each fsspec
file caches the blocks it fetched only while it is open, so every open fetched the header and the ``moov``
blocks again: a 20 s clip (under three 256 KiB blocks) was read 2.2 times over (docs/decoding.md, "Videos
behind a URL"). A closed file is kept here instead, keyed by what identifies those bytes (URL, storage
options, size, version, block size); the next open of that key takes it, blocks cached, and reads on.

Only an object with a version (ETag, version id, last-modified) is kept: without one, two opens of a URL
cannot tell a changed object from the same one. At most ``MAX_KEPT`` files are kept (each holds at most
fsspec's block cache, 32 blocks), and a kept file is taken out while in use, so two threads never share one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

MAX_KEPT = 2  # the object being decoded, and one more (the service reads a few at once)

Key = tuple[str, str, int, str, int]  # (url, storage options' fingerprint, size, version, block size)


class KeptObjects:
    """A small LRU of closed-but-kept fsspec files; ``take`` removes the file it returns."""

    def __init__(self, max_kept: int = MAX_KEPT):
        self.max_kept = max_kept
        self._files: OrderedDict[Key, Any] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: Key) -> Any | None:
        with self._lock:
            f = self._files.pop(key, None)
        if f is not None:
            f.seek(0)
        return f

    def keep(self, key: Key, f: Any) -> None:
        with self._lock:
            old = self._files.pop(key, None)
            self._files[key] = f
            evicted = [self._files.popitem(last=False)[1] for _ in range(len(self._files) - self.max_kept)]
        for x in [old, *evicted]:
            if x is not None and x is not f:
                x.close()

    def clear(self) -> None:
        with self._lock:
            files, self._files = list(self._files.values()), OrderedDict()
        for f in files:
            f.close()


class KeptFile:
    """The file an open returned: reads and seeks go to the fsspec file; ``close`` keeps it for the next
    open of ``key`` (a file whose read failed is closed, not kept: its cache may hold a partial block)."""

    def __init__(self, f: Any, key: Key, kept: KeptObjects):
        self._f, self._key, self._kept = f, key, kept
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        try:
            return self._f.read(n)
        except BaseException:
            self._key = None
            raise

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    @property
    def size(self) -> int:
        return self._f.size

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._key is None:
            self._f.close()
        else:
            self._kept.keep(self._key, self._f)

    def __enter__(self) -> "KeptFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
