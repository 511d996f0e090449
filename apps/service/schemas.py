"""Request and response models, limits and the JSON response class of the service."""

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from vidseek.store.filters import compare, field_ref

AGGREGATIONS = Literal["mean", "max", "query-weighted", "learned"]


@dataclass(frozen=True)
class Limits:
    max_query_chars: int = 1000
    max_k: int = 1000
    max_depth: int = 1000
    max_body_bytes: int = 1_000_000
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
