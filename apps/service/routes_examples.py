"""Query by example (docs/copies.md): POST /search/image, POST /search/clip, GET /search/clip/{video_id}.

The file is the multipart body's ``file`` part; the search parameters are query parameters
(``schemas.image_query_model`` / ``clip_query_model``). The body's size is bounded per path by the front
door as it streams in (``auth.Guard``: ``Limits.max_image_bytes``, ``max_clip_bytes``: 413). An image must
be JPEG, PNG or WebP (415 for another type; 422 when its bytes are no readable image); a clip must be an
MP4/MOV, Matroska/WebM or AVI file by its first bytes (415, ``uploads.py``) and decode (422). A clip is
decoded in a child process under a fixed time limit and frame cap (``Limits.clip_decode_s``,
``max_clip_frames``), as the index job decodes (``retrieval/clip_frames.py``).
"""

import time
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile

from vidseek.apps.service.deps import ServiceDep
from vidseek.apps.service.errors import bad, search_errors
from vidseek.apps.service.routes_search import filter_expr, hit_out
from vidseek.apps.service.schemas import (
    ClipSearchOut,
    ImageSearchOut,
    Limits,
    clip_query_model,
    image_query_model,
)
from vidseek.apps.service.state import Service, media_urls
from vidseek.apps.service.uploads import name_of, read_image, saved_clip
from vidseek.retrieval.params import PARAMS, ClipSearchParams, SearchParams


def _searcher_with_frames(svc: Service):
    from vidseek.retrieval.query_by_example import no_frames_message

    searcher = svc.searcher()
    if not svc.has_frames():
        bad(409, no_frames_message("the store"))
    return searcher


def run_image(svc: Service, data: bytes, name: str, chosen: Any) -> dict:
    from vidseek.retrieval.query_by_example import search_image

    values = {n: getattr(chosen, n) for n in PARAMS}
    params = SearchParams(**values, filter=filter_expr(svc.limits, chosen.filter))
    searcher = _searcher_with_frames(svc)
    t0 = time.perf_counter()
    with search_errors(lambda m: m.replace("uploaded image", name, 1)):  # QueryImageError is a ValueError: 422
        params.validate()
        hits = search_image(searcher, data, params, text=chosen.q, weight=chosen.weight)
    return {
        "query": chosen.q,
        "image": name,
        "weight": chosen.weight,
        "took_ms": round((time.perf_counter() - t0) * 1000, 2),
        "hits": [hit_out(rank, h) for rank, h in enumerate((h for h in hits if h.path), 1)],
        "warning": searcher.model_warning,
        "params": {**values, "filter": params.filter},
    }


def clip_hit_out(rank: int, h) -> dict:
    thumb, file = media_urls(h.video_id, h.segment[0])
    return {**h.as_dict(), "rank": rank, "name": FsPath(h.path).name, "thumbnail": thumb, "file": file}


def run_clip(svc: Service, path: str, name: str, chosen: Any) -> dict:
    from vidseek.operators.decode import DecodeError
    from vidseek.operators.isolated_decode import DecodeLimit
    from vidseek.retrieval.query_by_example import search_clip

    if chosen.start is not None and chosen.end is not None and chosen.start >= chosen.end:
        bad(422, f"start ({chosen.start:g} s) must be before end ({chosen.end:g} s)")
    knobs = {n: getattr(chosen, n) for n in ("k", "candidates", "per_frame", "threshold", "gap")}
    params = ClipSearchParams(**knobs, filter=filter_expr(svc.limits, chosen.filter))
    searcher = _searcher_with_frames(svc)
    # a fixed time limit and frame cap: the duration in a clip's header is the uploader's to choose
    limit = DecodeLimit(svc.limits.clip_decode_s, per_video_s=0.0)
    t0 = time.perf_counter()
    with search_errors(lambda m: m.replace(path, name)):
        try:
            hits = search_clip(
                searcher, path, chosen.start, chosen.end, params, limit=limit, max_frames=svc.limits.max_clip_frames
            )
        except DecodeError as e:
            bad(422, f"{name}: the clip cannot be decoded ({str(e).replace(path, name)})")
    return {
        "clip": name,
        "start": chosen.start,
        "end": chosen.end,
        "took_ms": round((time.perf_counter() - t0) * 1000, 2),
        "hits": [clip_hit_out(rank, h) for rank, h in enumerate((h for h in hits if h.path), 1)],
        "warning": searcher.model_warning,
    }


def router(limits: Limits) -> APIRouter:
    ImageQuery, ClipQuery = image_query_model(limits), clip_query_model(limits)  # noqa: N806 — model classes
    r = APIRouter()

    @r.post("/search/image", response_model=ImageSearchOut, summary="Search by image (JPEG, PNG or WebP upload)")
    def search_image_route(params: Annotated[ImageQuery, Query()], svc: ServiceDep, file: UploadFile = File(...)):
        return run_image(svc, read_image(file), name_of(file, "uploaded image"), params)

    @r.post("/search/clip", response_model=ClipSearchOut, summary="Search by video clip (upload)")
    def search_clip_route(params: Annotated[ClipQuery, Query()], svc: ServiceDep, file: UploadFile = File(...)):
        with saved_clip(file) as path:
            return run_clip(svc, path, name_of(file, "uploaded clip"), params)

    @r.get("/search/clip/{video_id}", response_model=ClipSearchOut, summary="Search with a clip of an indexed video")
    def search_indexed_clip(video_id: str, params: Annotated[ClipQuery, Query()], svc: ServiceDep):
        path, _ = svc.video_file(video_id)
        return {**run_clip(svc, path, video_id, params), "clip": video_id}

    return r
