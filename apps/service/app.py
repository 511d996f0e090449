"""The FastAPI app: ``create_app(store_uri, token=None, clip=None, limits=Limits())`` (see the package docs)."""

import logging
import time
from pathlib import Path as FsPath
from typing import Annotated, Any, Callable, Union

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidseek.apps.service.auth import Guard
from vidseek.apps.service.ingest import IngestError
from vidseek.apps.service.media import ThumbnailError, frame_jpeg, media_type
from vidseek.apps.service.schemas import (
    AGGREGATIONS,
    JSON,
    Limits,
    RerankOut,
    SearchOut,
    Text,
    TypedFilter,
    VideoOut,
    _utf8,
)
from vidseek.apps.service.state import Service, media_urls
from vidseek.pipeline.index_config import IndexConfig
from vidseek.retrieval.bounded import CallTimeout, call_with_timeout
from vidseek.retrieval.params import DEFAULTS as D
from vidseek.store.filters import all_of, parse_user_filter
from vidseek.store.video_store import VIDEO_FIELDS, StoreError, StoreUnavailableError

log = logging.getLogger(__name__)
STATIC = FsPath(__file__).parent / "static"
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def create_app(
    store_uri: str,
    token: str | None = None,
    clip=None,
    limits: Limits | None = None,
    *,
    ingest_roots: list[str | FsPath] | None = None,
    index_fn: Callable | None = None,
    model: str = IndexConfig.model,
    pretrained: str | None = None,
    allowed_hosts: set[str] | None = None,
    lock_wait_s: float = 15.0,
    prefix: str = "vidseek",
    verify_files: bool = True,
    in_memory: bool = False,
) -> FastAPI:
    """The service over ``store_uri``; opens the store (Milvus Lite: holds its lock) and loads the model now.

    ``token``: required on every request but the page and /healthz. ``clip``: a loaded model (default: the
    store's). ``ingest_roots``: directories POST /ingest may read (none: ingest off). ``index_fn``: the index
    job (default ``run_index``). ``model``/``pretrained``: for ingesting into an empty store.
    ``allowed_hosts``: Host header names to answer (``vidseek serve`` on loopback: the loopback names).
    ``verify_files``: serve a video's file only while its id still matches it (path, size, mtime).
    ``in_memory``: search a replica of the store held in this process (``vidseek.retrieval.replica``), kept fresh by
    the store's write notifications.
    ``app.state.service.close()`` releases the store.
    """
    limits = limits or Limits()
    svc = Service(
        store_uri, clip, limits, ingest_roots, index_fn, model, pretrained, lock_wait_s, prefix, verify_files, in_memory
    )
    app = FastAPI(
        title="vidseek",
        version="0.1.0",
        default_response_class=JSON,
        description="Text search over indexed videos: hits with moments, thumbnails, playback.",
    )
    app.state.service = svc
    app.add_middleware(Guard, token=token, max_body=limits.max_body_bytes, allowed_hosts=allowed_hosts)
    static = {
        p.name: (p.read_bytes(), STATIC_TYPES.get(p.suffix, "application/octet-stream"))
        for p in STATIC.iterdir()
        if p.is_file()
    }

    # -- errors: JSON, 4xx for bad input ----------------------------------------------------------------
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSON({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        return JSON({"detail": errors}, status_code=422)

    @app.exception_handler(StoreUnavailableError)
    async def store_unavailable(request: Request, exc: StoreUnavailableError):
        return JSON({"detail": str(exc)}, status_code=503, headers={"Retry-After": "10"})

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSON({"detail": "internal error"}, status_code=500)

    def bad(status: int, detail: str):
        raise HTTPException(status, detail)

    # -- page ---------------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page():
        data, kind = static["index.html"]
        return Response(data, media_type=kind, headers={"cache-control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str):
        if name not in static:
            raise HTTPException(404, "not found")
        data, kind = static[name]
        return Response(data, media_type=kind, headers={"cache-control": "no-cache"})

    @app.get("/healthz", summary="Liveness (no token needed)")
    def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/info", summary="What the store holds: model, videos by status, frames, thinning")
    def info() -> dict[str, Any]:
        s = svc.store
        if s.dim is None:
            return {"model": None, "videos": 0, "ok": 0, "failed": 0, "frames": 0, "thinning": None}
        stamp = s.model_stamp() or {}
        return {
            "model": {k: stamp.get(k) for k in ("model", "weights", "embed_dim")},
            "videos": s.count(),
            "ok": s.count(filter='status == "ok"'),
            "failed": s.count(filter='status == "failed"'),
            "frames": s.count_frames(),
            "thinning": s.thinning(),  # {"threshold": T} once the store's frame rows are merged (`vidseek thin`)
        }

    # -- search -------------------------------------------------------------------------------------------
    FilterSpec = Union[TypedFilter, Text(limits.max_filter_chars, 1)]

    def filter_expr(filters: list) -> str:
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

    def run_search(
        q: str, k: int, aggregation: str, tau: float, rerank: bool, alpha: float, depth: int, filters: list
    ) -> dict:
        from vidseek.retrieval.search import SearchParams

        expr = filter_expr(filters)
        searcher = svc.searcher()
        params = SearchParams(
            k=k, aggregation=aggregation, tau=tau, rerank=rerank, alpha=alpha, depth=depth, filter=expr
        )
        t0 = time.perf_counter()
        try:
            params.validate()
            hits = searcher.search(q, params)
        except StoreUnavailableError:
            raise  # 503 (store_unavailable above)
        except StoreError as e:
            bad(400, str(e))
        except ValueError as e:
            bad(422, str(e))
        hits = [h for h in hits if h.path]  # a video being indexed (frames written, row not yet) is left out
        out = []
        for rank, h in enumerate(hits, 1):
            thumb, file = media_urls(h.video_id, h.best_t)
            out.append(
                {
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
            )
        return {
            "query": q,
            "took_ms": round((time.perf_counter() - t0) * 1000, 2),
            "hits": out,
            "warning": searcher.model_warning,
            "params": {
                "k": k,
                "aggregation": aggregation,
                "tau": tau,
                "rerank": rerank,
                "alpha": alpha,
                "depth": depth,
                "filter": expr,
            },
        }

    @app.get("/search", response_model=SearchOut, summary="Text search (query parameters)")
    def search_get(
        q: Annotated[Text(limits.max_query_chars, 1), Query(description="the text query")],
        k: Annotated[int, Query(ge=1, le=limits.max_k)] = D.k,
        aggregation: AGGREGATIONS = D.aggregation,
        tau: Annotated[float, Query(ge=0.001, le=1000, allow_inf_nan=False)] = D.tau,
        rerank: bool = D.rerank,
        alpha: Annotated[float, Query(ge=0, le=1, allow_inf_nan=False)] = D.alpha,
        depth: Annotated[int, Query(ge=1, le=limits.max_depth)] = D.depth,
        filter: Annotated[
            list[Text(limits.max_filter_chars, 1)],
            Query(description="metadata filter key=value, key>=3, … (repeatable)"),
        ] = [],  # noqa: B006
    ):
        return run_search(q, k, aggregation, tau, rerank, alpha, depth, filter)

    class SearchBody(BaseModel):
        model_config = ConfigDict(extra="forbid")
        q: Text(limits.max_query_chars, 1)
        k: int = Field(D.k, ge=1, le=limits.max_k)
        aggregation: AGGREGATIONS = D.aggregation
        tau: float = Field(D.tau, ge=0.001, le=1000, allow_inf_nan=False)
        rerank: bool = D.rerank
        alpha: float = Field(D.alpha, ge=0, le=1, allow_inf_nan=False)
        depth: int = Field(D.depth, ge=1, le=limits.max_depth)
        filters: list[FilterSpec] = Field(
            default_factory=list,
            max_length=limits.max_filters,
            description='typed {"key", "op", "value"} or "key=value" strings',
        )

    @app.post("/search", response_model=SearchOut, summary="Text search (JSON body; typed filters)")
    def search_post(body: SearchBody):
        return run_search(body.q, body.k, body.aggregation, body.tau, body.rerank, body.alpha, body.depth, body.filters)

    # -- rerank -------------------------------------------------------------------------------------------
    class CandidateIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        id: Text(512, 1)
        score: float = Field(ge=-1e15, le=1e15, allow_inf_nan=False)
        path: Text(4096) | None = Field(None, description="matched against indexed paths; never opened")

    class RerankBody(BaseModel):
        model_config = ConfigDict(extra="forbid")
        query: Text(limits.max_query_chars, 1)
        candidates: list[CandidateIn] = Field(max_length=limits.max_candidates)
        alpha: float = Field(D.alpha, ge=0, le=1, allow_inf_nan=False)
        depth: int = Field(D.depth, ge=1, le=limits.max_depth)

    @app.post(
        "/rerank", response_model=RerankOut, summary="CLIPRerank a candidate list with frame evidence from the store"
    )
    def rerank(body: RerankBody):
        from vidseek.retrieval.rerank import rerank_run
        from vidseek.retrieval.runfiles import Candidate, RunQuery

        if not body.query.strip():
            bad(422, "empty query")
        if not body.candidates:
            return {"query": body.query, "candidates": [], "rescored": 0, "without_evidence": []}
        run = [RunQuery("q", body.query, [Candidate(c.id, c.score, c.path) for c in body.candidates])]
        try:
            (out,), report = rerank_run(run, svc.evidence(), body.alpha, body.depth)
        except StoreUnavailableError:
            raise
        except (ValueError, StoreError) as e:
            bad(422, str(e))
        cands = []
        for rank, c in enumerate(out.candidates, 1):
            cands.append(
                {
                    "id": c.id,
                    "rank": rank,
                    "score": c.score,
                    "path": c.path,
                    "evidence": "fine_score" in c.extra,
                    "initial_score": c.extra.get("initial_score", c.score),
                    "fine_score": c.extra.get("fine_score"),
                    "fused_score": c.extra.get("fused_score"),
                }
            )
        return {
            "query": body.query,
            "candidates": cands,
            "rescored": report.rescored,
            "without_evidence": [w.split(":", 1)[1] for w in report.without_evidence],
        }

    # -- videos -------------------------------------------------------------------------------------------
    def checked_file(video_id: str) -> tuple[str, dict]:
        """The video's file, checked to be the one indexed; its stat on a stalled mount answers 504."""
        try:
            return call_with_timeout(
                lambda: svc.video_file(video_id),
                limits.decode_timeout_s,
                f"checking the file of video {video_id}",
                permits=svc.decodes,
            )
        except CallTimeout as e:
            bad(504, f"{e}: the file may be on a slow or stalled disk; try again later")

    VideoId = Annotated[str, Path(description="a video id from a search hit", max_length=256)]

    @app.get("/videos/{video_id}", response_model=VideoOut, summary="A video's row (no vectors)")
    def video(video_id: VideoId):
        row = svc.video(video_id)
        thumb, file = media_urls(video_id) if row["status"] == "ok" else (None, None)
        return {
            **{f: row.get(f) for f in VIDEO_FIELDS},
            "metadata": dict(row.get("metadata") or {}),
            "name": FsPath(row["path"]).name,
            "thumbnail": thumb,
            "file": file,
        }

    @app.get(
        "/videos/{video_id}/thumbnail",
        summary="JPEG of the frame on screen at t seconds",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}},
    )
    def thumbnail(
        video_id: VideoId,
        t: Annotated[float, Query(description="seconds; clamped to the video", allow_inf_nan=False)] = 0.0,
    ):
        path, row = checked_file(video_id)
        t = min(max(float(t), 0.0), max(float(row.get("duration") or 0.0), 0.0))
        key = (video_id, round(t, 2))
        data = svc.thumbs.get(key)
        if data is None:
            try:
                data = call_with_timeout(
                    lambda: frame_jpeg(path, t, limits.thumbnail_width),
                    limits.decode_timeout_s,
                    f"thumbnail of {FsPath(path).name} at {t:.2f} s",
                    permits=svc.decodes,
                )
            except ThumbnailError as e:
                bad(404, f"no frame at {t:.2f} s: {e}")
            except CallTimeout as e:
                bad(504, f"{e}: the file may be on a slow or stalled disk; try again later")
            svc.thumbs.put(key, data)
        return Response(data, media_type="image/jpeg", headers={"cache-control": "private, max-age=3600"})

    @app.get(
        "/videos/{video_id}/file",
        summary="The video file (supports HTTP Range requests)",
        response_class=Response,
        responses={200: {"content": {"video/*": {}}}, 206: {"description": "range"}},
    )
    def video_file(video_id: VideoId):
        path, _ = checked_file(video_id)
        return FileResponse(
            path,
            media_type=media_type(path),
            content_disposition_type="inline",
            headers={"cache-control": "private, max-age=3600"},
        )

    # -- ingest -------------------------------------------------------------------------------------------
    class IngestBody(BaseModel):
        model_config = ConfigDict(extra="forbid")
        source: Text(4096, 1) = Field(description="directory, glob, video file or list file under an ingest root")
        sampling: Text(32, 1) = IndexConfig.sampling
        prune: bool = False
        retry_failed: bool = False
        max_failures: int | None = Field(None, ge=0, le=10**9)

    def ingest_call(fn, *a, **kw):
        try:
            return fn(*a, **kw)
        except IngestError as e:
            bad(e.status, e.detail)

    @app.post("/ingest", status_code=202, summary="Index a source through the service's store (one job at a time)")
    def ingest(body: IngestBody) -> dict[str, Any]:
        if "\x00" in body.source:
            bad(422, "bad source path")
        job = ingest_call(
            svc.ingest.start, body.source, body.sampling, body.prune, body.retry_failed, body.max_failures
        )
        return {**job.as_dict(), "status_url": f"/ingest/{job.id}"}

    @app.get("/ingest", summary="Recent ingest jobs, newest first")
    def ingest_jobs() -> list[dict[str, Any]]:
        return [j.as_dict() for j in reversed(list(svc.ingest.jobs.values()))]

    @app.get("/ingest/{job_id}", summary="An ingest job's state, progress and summary")
    def ingest_job(job_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
        job = svc.ingest.get(job_id)
        if job is None:
            bad(404, "no ingest job with this id")
        return job.as_dict()

    return app
