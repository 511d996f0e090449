"""A bounded cache of query embeddings: a repeated text query does not run the text tower again.

Keyed by the model stamp and the exact query text, so one cache never hands a vector of one embedding space
to a searcher of another. Least recently used entries go first; safe under the service's concurrent requests.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Callable

import numpy as np


def stamp_key(stamp: dict) -> str:
    """A short, stable key of a model stamp (its JSON, sorted)."""
    return hashlib.sha1(json.dumps(stamp, sort_keys=True, default=str).encode()).hexdigest()[:16]


class QueryCache:
    """``cache.vectors(model_key, texts, encode)``: unit vectors [Q, D], encoding only the texts not held."""

    def __init__(self, max_entries: int = 4096):
        if max_entries < 0:
            raise ValueError("a query cache holds ≥ 0 entries (0 turns it off)")
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def vectors(self, model_key: str, texts: list[str], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        with self._lock:
            found = {t: self._entries.get((model_key, t)) for t in dict.fromkeys(texts)}
            for t, v in found.items():
                if v is not None:
                    self._entries.move_to_end((model_key, t))
        missing = [t for t, v in found.items() if v is None]
        if missing:
            fresh = encode(missing)  # [M, D], one batch for every text not held
            found.update(zip(missing, fresh))
        with self._lock:
            self.hits += len(texts) - len(missing)
            self.misses += len(missing)
            if self.max_entries:
                for t in missing:
                    self._entries[(model_key, t)] = found[t]
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return np.stack([found[t] for t in texts])

    def __len__(self) -> int:
        return len(self._entries)
