"""Request and response models, limits and the JSON response class of the service.

The search parameters of ``GET /search``, ``POST /search`` and ``POST /rerank`` are built from the one
declaration in retrieval/params.py (``PARAMS``: default, accepted range, help), with the service's caps on
k and depth (``Limits``) on top: ``search_models`` and ``rerank_body``.
"""

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_type_hints

from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, create_model

from vidseek.pipeline.index_config import IndexConfig
from vidseek.retrieval.params import IMAGE_WEIGHT, PARAMS, ClipSearchParams, SearchParams
from vidseek.store.filters import compare, field_ref


@dataclass(frozen=True)
class Limits:
    max_query_chars: int = 1000
    max_k: int = 1000
    max_depth: int = 1000
    max_body_bytes: int = 1_000_000
    max_image_bytes: int = 20_000_000  # an uploaded query image (POST /search/image)
    max_clip_bytes: int = 100_000_000  # an uploaded query clip (POST /search/clip): streamed to a temp file
    clip_decode_s: float = 60.0  # a query clip's decode, whatever its header's duration says: then 422
    max_clip_frames: int = 2000  # sampled frames of a query clip (or its part): more is 422
    max_filters: int = 32
    max_filter_chars: int = 256
    max_candidates: int = 1000
    thumbnail_width: int = 320
    max_decodes: int = 4  # concurrent thumbnail decodes (hung ones included: see retrieval/bounded.py)
    decode_timeout_s: float = 15.0  # a thumbnail decode or a file check that takes longer answers 504


# -- JSON out: always valid (ASCII-escaped, non-finite floats as null) ------------------------------------
def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(_finite(content), ensure_ascii=True, allow_nan=False, default=str).encode("ascii")


def _utf8(v: str) -> str:
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return v


def Text(max_length: int, min_length: int = 0):  # noqa: N802 — a type factory
    return Annotated[str, Field(min_length=min_length, max_length=max_length), AfterValidator(_utf8)]


class TypedFilter(BaseModel):
    """``metadata[key] op value``; the value's JSON type is the type compared (strings are quoted)."""

    model_config = ConfigDict(extra="forbid")
    key: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
    op: Literal["==", "=", "!=", ">", ">=", "<", "<="] = "=="
    value: Union[
        StrictBool,
        Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)],
        Annotated[StrictFloat, Field(allow_inf_nan=False)],
        Text(256),
    ]

    def expr(self) -> str:
        return compare(field_ref(self.key, "metadata"), "==" if self.op == "=" else self.op, self.value)


class HitOut(BaseModel):
    rank: int
    video_id: str
    name: str
    path: str
    score: float | None = Field(description="final score (fused when reranked); null beyond the rerank depth")
    scores: dict[str, float | None]
    moment: tuple[float, float] = Field(description="(start_s, end_s) of the best-matching frames")
    best_t: float = Field(description="time of the best-matching frame (the thumbnail's t)")
    metadata: dict[str, Any]
    thumbnail: str
    file: str


class SearchOut(BaseModel):
    query: str
    params: dict[str, Any]
    took_ms: float
    hits: list[HitOut]
    warning: str | None = Field(
        None, description="set when the store's model has random weights (e.g. tiny-random): the hits are random"
    )


class RerankedOut(BaseModel):
    id: str
    rank: int
    score: float
    path: str | None = None
    evidence: bool
    initial_score: float
    fine_score: float | None = None
    fused_score: float | None = None


class RerankOut(BaseModel):
    query: str
    candidates: list[RerankedOut]
    rescored: int
    without_evidence: list[str]


class VideoOut(BaseModel):
    video_id: str
    path: str
    name: str
    status: str
    stage: str
    error: str
    duration: float
    n_frames: int
    lost: int
    decoder: str
    sampling: str
    learned_head: str
    metadata: dict[str, Any]
    thumbnail: str | None
    file: str | None


# -- request models -----------------------------------------------------------------------------------------
def param_field(name: str, cap: int | None = None) -> tuple[Any, Any]:
    """``(type, Field)`` of search parameter ``name``: its default, the range ``SearchParams.validate()``
    accepts and its help line, all from retrieval/params.py ``PARAMS``; ``cap`` lowers the upper bound (the
    service's limits on k and depth)."""
    spec = PARAMS[name]
    if spec.choices is not None:
        return Literal[spec.choices], Field(spec.default, description=spec.help)
    kind = get_type_hints(SearchParams)[name]
    bounds: dict[str, Any] = {}
    if spec.ge is not None:
        bounds["ge"] = spec.ge
    le = spec.le if cap is None else cap if spec.le is None else min(spec.le, cap)
    if le is not None:
        bounds["le"] = le
    if kind is float:
        bounds["allow_inf_nan"] = False
    return kind, Field(spec.default, description=spec.help, **bounds)


def _search_fields(limits: Limits) -> dict[str, tuple[Any, Any]]:
    caps = {"k": limits.max_k, "depth": limits.max_depth}
    return {
        "q": (Text(limits.max_query_chars, 1), Field(description="the text query")),
        **{name: param_field(name, caps.get(name)) for name in PARAMS},
    }


def search_models(limits: Limits) -> tuple[type[BaseModel], type[BaseModel]]:
    """``(SearchQuery, SearchBody)``: the query parameters of ``GET /search`` (unknown ones ignored, filters
    as repeated ``key=value`` strings) and the body of ``POST /search`` (unknown fields refused, typed
    filters or strings), the same search parameters in both."""
    query = create_model(
        "SearchQuery",
        **_search_fields(limits),
        filter=(
            list[Text(limits.max_filter_chars, 1)],
            Field([], description="metadata filter key=value, key>=3, … (repeatable)"),
        ),
    )
    body = create_model(
        "SearchBody",
        __config__=ConfigDict(extra="forbid"),
        **_search_fields(limits),
        filters=(
            list[Union[TypedFilter, Text(limits.max_filter_chars, 1)]],
            Field(
                default_factory=list,
                max_length=limits.max_filters,
                description='typed {"key", "op", "value"} or "key=value" strings',
            ),
        ),
    )
    return query, body


class CandidateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Text(512, 1)
    score: float = Field(ge=-1e15, le=1e15, allow_inf_nan=False)
    path: Text(4096) | None = Field(None, description="matched against indexed paths; never opened")


def rerank_body(limits: Limits) -> type[BaseModel]:
    """The body of ``POST /rerank``: a query, the client's candidates, and alpha and depth as in search."""
    return create_model(
        "RerankBody",
        __config__=ConfigDict(extra="forbid"),
        query=(Text(limits.max_query_chars, 1), ...),
        candidates=(list[CandidateIn], Field(max_length=limits.max_candidates)),
        alpha=param_field("alpha"),
        depth=param_field("depth", limits.max_depth),
    )


class IngestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Text(4096, 1) = Field(description="directory, glob, video file or list file under an ingest root")
    sampling: Text(32, 1) = IndexConfig.sampling
    prune: bool = False
    retry_failed: bool = False
    max_failures: int | None = Field(None, ge=0, le=10**9)


# -- query by example (docs/copies.md): the search parameters as query parameters, the file as the body ------
def image_query_model(limits: Limits) -> type[BaseModel]:
    """Query parameters of ``POST /search/image``: text search's (``q`` optional: text to fuse with the
    image), the image's weight, and ``key=value`` filters."""
    fields = _search_fields(limits)
    fields["q"] = (Text(limits.max_query_chars, 1) | None, Field(None, description="text fused with the image"))
    return create_model(
        "ImageQuery",
        **fields,
        weight=(float, Field(IMAGE_WEIGHT, ge=0, le=1, description="the image's share when q is given")),
        filter=(list[Text(limits.max_filter_chars, 1)], Field([], description="metadata filter key=value")),
    )


def clip_query_model(limits: Limits) -> type[BaseModel]:
    """Query parameters of the clip searches: the part of the clip, k, the alignment's knobs, filters."""
    d = ClipSearchParams()
    return create_model(
        "ClipQuery",
        start=(float | None, Field(None, ge=0, allow_inf_nan=False, description="the clip from here (s)")),
        end=(float | None, Field(None, gt=0, allow_inf_nan=False, description="up to here (s)")),
        k=(int, Field(d.k, ge=1, le=limits.max_k, description="hits to return")),
        candidates=(int, Field(d.candidates, ge=1, le=limits.max_depth, description="videos aligned")),
        per_frame=(int, Field(d.per_frame, ge=1, le=limits.max_depth, description="videos per clip frame")),
        threshold=(float, Field(d.threshold, gt=0, lt=1, description="alignment θ: cosine of matching frames")),
        gap=(float, Field(d.gap, ge=0, le=1, description="alignment cost of a skipped frame")),
        filter=(list[Text(limits.max_filter_chars, 1)], Field([], description="metadata filter key=value")),
    )


class ImageSearchOut(BaseModel):
    query: str | None = Field(description="the text fused with the image, if any")
    image: str = Field(description="the uploaded file's name")
    weight: float
    params: dict[str, Any]
    took_ms: float
    hits: list[HitOut]
    warning: str | None = None


class ClipHitOut(BaseModel):
    rank: int
    video_id: str
    name: str
    path: str
    score: float = Field(description="alignment score per clip frame (hits are ranked by it)")
    similarity: float = Field(description="mean cosine of the aligned frame pairs")
    segment: tuple[float, float] = Field(description="the aligned segment in the video (s)")
    query_segment: tuple[float, float] = Field(description="and in the query clip (s)")
    coverage: float = Field(description="share of the clip's frames inside the aligned segment")
    aligned: bool = Field(description="false: no frame pair passed the threshold; the best pair's spans")
    metadata: dict[str, Any]
    thumbnail: str
    file: str


class ClipSearchOut(BaseModel):
    clip: str = Field(description="the uploaded file's name, or the indexed video's id")
    start: float | None
    end: float | None
    took_ms: float
    hits: list[ClipHitOut]
    warning: str | None = None
