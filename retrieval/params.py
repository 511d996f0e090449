"""Search parameters, their defaults and the values they accept: the one place they are written (the CLI, the
service and the docs read them).

``PARAMS`` is the table: per parameter its default, the range (or choices) ``SearchParams.validate()`` accepts
and a help line. ``SearchParams`` takes its defaults from it, ``validate()`` checks against it, and the
service builds its GET query parameters and POST body from it (``vidseek.apps.service.schemas``).

Light on purpose (no torch, no store): the CLI reads the defaults to build its options at start-up.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

AGGREGATIONS = ("mean", "max", "query-weighted", "learned")  # operators/aggregate.py's scorers, and `learned`


@dataclass(frozen=True)
class Param:
    """One search parameter: its default, what ``SearchParams.validate()`` accepts and a help line.

    ``ge``/``le``: inclusive bounds of a number (None: unbounded on that side); a bounded float must also be
    finite. ``choices``: the accepted values of a string."""

    default: object
    help: str
    ge: float | None = None
    le: float | None = None
    choices: tuple[str, ...] | None = None

    def describe(self) -> str:
        """The accepted values in words: ``in [0, 1]``, ``≥ 1``, ``one of mean, max, …`` ('' for any)."""
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        if self.ge is not None and self.le is not None:
            return f"in [{self.ge:g}, {self.le:g}]"
        if self.ge is not None:
            return f"≥ {self.ge:g}"
        if self.le is not None:
            return f"≤ {self.le:g}"
        return ""

    def check(self, name: str, value) -> None:
        """Raise ``ValueError`` naming the parameter unless ``value`` is accepted."""
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(f"unknown {name} {value!r}; choose from {list(self.choices)}")
            return
        if self.ge is None and self.le is None:
            return
        ok = isinstance(value, numbers.Real) and math.isfinite(value)
        ok = ok and (self.ge is None or value >= self.ge) and (self.le is None or value <= self.le)
        if not ok:
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")


# The one declaration of the search parameters (the CLI's options, the service's GET parameters and POST body
# are built from it; the service adds its own caps on k and depth, ``Limits.max_k``/``max_depth``).
PARAMS: dict[str, Param] = {
    "k": Param(10, "hits to return", ge=1),
    "aggregation": Param("query-weighted", "mean | max | query-weighted | learned", choices=AGGREGATIONS),
    # below ~1e-38 s/τ overflows float32 and every score is NaN; above ~1e3 it is the mean
    "tau": Param(0.1, "query-weighted pooling temperature", ge=0.001, le=1000),
    "rerank": Param(True, "CLIPRerank fusion with max-pooled frame scores"),
    "alpha": Param(0.4, "CLIPRerank weight of the first-stage score", ge=0, le=1),
    "depth": Param(100, "candidates per stage and rerank depth", ge=1),
}


@dataclass
class SearchParams:
    k: int = PARAMS["k"].default
    aggregation: str = PARAMS["aggregation"].default
    tau: float = PARAMS["tau"].default
    rerank: bool = PARAMS["rerank"].default
    alpha: float = PARAMS["alpha"].default
    depth: int = PARAMS["depth"].default
    filter: str = ""  # a safe expression from vidseek.store.filters (never raw user text)

    def validate(self) -> "SearchParams":
        for name, spec in PARAMS.items():
            spec.check(name, getattr(self, name))
        return self


IMAGE_WEIGHT = 0.5  # the image's share in a text + image query (docs/copies.md, "Text and image together")


@dataclass(frozen=True)
class ClipSearchParams:
    """A video-clip query's knobs (``retrieval/query_by_example.py`` ``search_clip``; docs/copies.md)."""

    k: int = 10
    candidates: int = 50  # videos aligned (the most hit by the query's frames)
    per_frame: int = 20  # videos per query frame in the grouped frame ANN
    threshold: float = 0.85  # θ of the alignment: a frame pair above it counts as matching
    gap: float = 0.02
    filter: str = ""  # a safe expression from vidseek.store.filters

    def validate(self) -> "ClipSearchParams":
        if min(self.k, self.candidates, self.per_frame) < 1 or not 0 < self.threshold < 1 or self.gap < 0:
            raise ValueError("need k, candidates, per_frame ≥ 1, 0 < threshold < 1, gap ≥ 0")
        return self


DEFAULTS = SearchParams()  # the one source of search defaults: the CLI, the service and the README read it
