"""Text search: GET /search (query parameters) and POST /search (JSON body, typed filters).

Both take the search parameters of retrieval/params.py ``PARAMS`` through one model builder
(``schemas.search_models``) and answer through ``run_search``.
"""

import time
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from vidseek.apps.service.deps import ServiceDep
from vidseek.apps.service.errors import bad, search_errors
from vidseek.apps.service.schemas import Limits, SearchOut, TypedFilter, _utf8, search_models
from vidseek.apps.service.state import Service, media_urls
from vidseek.retrieval.params import PARAMS, SearchParams
from vidseek.store.filters import all_of, parse_user_filter


def filter_expr(limits: Limits, filters: list) -> str:
    """One safe expression of typed filters and ``key=value`` strings (422 on a bad one)."""
    if len(filters) > limits.max_filters:
        bad(422, f"at most {limits.max_filters} filters")
    parts = []
    for f in filters:
        try:
            if isinstance(f, TypedFilter):
                parts.append(f.expr())
            else:
                if len(f) > limits.max_filter_chars:
                    bad(422, f"a filter has more than {limits.max_filter_chars} characters")
                parts.append(parse_user_filter(_utf8(f)))
        except ValueError as e:
            bad(422, str(e))
    return all_of(*parts)


def hit_out(rank: int, h) -> dict:
    thumb, file = media_urls(h.video_id, h.best_t)
    return {
        "rank": rank,
        "video_id": h.video_id,
        "name": FsPath(h.path).name,
        "path": h.path,
        "score": h.score,
        "scores": h.scores,
        "moment": list(h.moment),
        "best_t": h.best_t,
        "metadata": h.metadata,
        "thumbnail": thumb,
        "file": file,
    }


def run_search(svc: Service, q: str, filters: list, chosen: BaseModel) -> dict:
    """Search ``q`` with the parameters of ``chosen`` (a SearchQuery or SearchBody) and ``filters``."""
    expr = filter_expr(svc.limits, filters)
    searcher = svc.searcher()
    values = {name: getattr(chosen, name) for name in PARAMS}
    params = SearchParams(**values, filter=expr)
    t0 = time.perf_counter()
    with search_errors():
        params.validate()
        hits = searcher.search(q, params)
    hits = [h for h in hits if h.path]  # a video being indexed (frames written, row not yet) is left out
    return {
        "query": q,
        "took_ms": round((time.perf_counter() - t0) * 1000, 2),
        "hits": [hit_out(rank, h) for rank, h in enumerate(hits, 1)],
        "warning": searcher.model_warning,
        "params": {**values, "filter": expr},
    }


def router(limits: Limits) -> APIRouter:
    """GET and POST /search, their parameters bounded by ``limits``."""
    SearchQuery, SearchBody = search_models(limits)  # noqa: N806 — model classes
    r = APIRouter()

    @r.get("/search", response_model=SearchOut, summary="Text search (query parameters)")
    def search_get(params: Annotated[SearchQuery, Query()], svc: ServiceDep):
        return run_search(svc, params.q, params.filter, params)

    @r.post("/search", response_model=SearchOut, summary="Text search (JSON body; typed filters)")
    def search_post(body: SearchBody, svc: ServiceDep):
        return run_search(svc, body.q, body.filters, body)

    return r
