"""Search parameters and their defaults: the one place they are written (CLI, service and docs read them).

Light on purpose (no torch, no store): the CLI reads the defaults to build its options at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SearchParams:
    k: int = 10
    aggregation: str = "query-weighted"
    tau: float = 0.1
    rerank: bool = True
    alpha: float = 0.4
    depth: int = 100
    filter: str = ""  # a safe expression from vidseek.store.filters (never raw user text)

    def validate(self) -> "SearchParams":
        if self.k < 1 or self.depth < 1:
            raise ValueError("k and depth must be ≥ 1")
        if self.aggregation != "learned":
            from vidseek.operators.aggregate import get_scorer  # raises on an unknown name (imports torch: lazily)

            get_scorer(self.aggregation)
        if self.tau <= 0:
            raise ValueError("tau must be > 0")
        if not 0 <= self.alpha <= 1:
            raise ValueError("alpha must be in [0, 1]")
        return self


DEFAULTS = SearchParams()  # the one source of search defaults: the CLI, the service and the README read it
