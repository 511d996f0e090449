"""The FastAPI app: ``create_app(store_uri, token=None, clip=None, limits=Limits())`` (see the package docs).

The app is assembled here from one router per area (``routes_meta``: page, static, /healthz, /info;
``routes_search``; ``routes_examples``: search by image and by clip; ``routes_rerank``; ``routes_videos``; ``routes_ingest``), the error handlers
(``errors``) and the front-door middleware (``auth.Guard``). The routes reach the shared ``Service`` on
``app.state.service`` through the dependencies of ``deps``.
"""

import functools
from pathlib import Path as FsPath
from typing import Callable

from fastapi import FastAPI

from vidseek.apps.service import (
    routes_examples,
    routes_ingest,
    routes_meta,
    routes_rerank,
    routes_search,
    routes_videos,
)
from vidseek.apps.service.auth import Guard
from vidseek.apps.service.errors import add_error_handlers
from vidseek.apps.service.media import frame_jpeg
from vidseek.apps.service.schemas import JSON, Limits
from vidseek.apps.service.state import Service
from vidseek.operators.remote_source import StorageOptions, is_url
from vidseek.pipeline.index_config import IndexConfig


def render_frame(path: str, t: float, width: int, storage_options: StorageOptions | None = None) -> bytes:
    """The thumbnail decoder: this module's ``frame_jpeg``, looked up per call (a test stands in a stalled
    one by patching ``vidseek.apps.service.app.frame_jpeg``); a URL's with the service's storage options."""
    if is_url(path):
        return frame_jpeg(path, t, width, storage_options=storage_options)
    return frame_jpeg(path, t, width)


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
    storage_options: StorageOptions | dict | str | None = None,
    frame_mirror: str | None = None,
    mirror_sync_s: float = 60.0,
) -> FastAPI:
    """The service over ``store_uri``; opens the store (Milvus Lite: holds its lock) and loads the model now.

    ``token``: required on every request but the page and /healthz. ``clip``: a loaded model (default: the
    store's). ``ingest_roots``: directories POST /ingest may read (none: ingest off). ``index_fn``: the index
    job (default ``run_index``). ``model``/``pretrained``: for ingesting into an empty store.
    ``allowed_hosts``: Host header names to answer (``vidseek serve`` on loopback: the loopback names).
    ``verify_files``: serve a video's file only while its id still matches it (path, size, mtime).
    ``in_memory``: search a replica of the store held in this process (``vidseek.retrieval.replica``), kept fresh by
    the store's write notifications.
    ``storage_options``: fsspec options (credentials, endpoint) for videos indexed by URL (s3://, https://);
    default: the environment's and profile files' credentials.
    ``frame_mirror``: a directory holding a local copy of the store's frame tables
    (``vidseek.retrieval.frame_mirror``) that rescoring reads instead of Milvus; synced at start and every
    ``mirror_sync_s`` seconds (0: at start only).
    ``app.state.service.close()`` releases the store.
    """
    limits = limits or Limits()
    app = FastAPI(
        title="vidseek",
        version="0.1.0",
        default_response_class=JSON,
        description="Text, image and clip search over indexed videos: hits with moments, thumbnails, playback.",
    )
    storage = StorageOptions.parse(storage_options)
    app.state.service = Service(
        store_uri,
        clip,
        limits,
        ingest_roots,
        index_fn,
        model,
        pretrained,
        lock_wait_s,
        prefix,
        verify_files,
        in_memory,
        frame_mirror,
        mirror_sync_s,
    )
    app.state.service.storage = storage
    app.state.render_frame = functools.partial(render_frame, storage_options=storage)
    uploads = {"/search/image": limits.max_image_bytes, "/search/clip": limits.max_clip_bytes}
    app.add_middleware(
        Guard, token=token, max_body=limits.max_body_bytes, allowed_hosts=allowed_hosts, upload_paths=uploads
    )
    add_error_handlers(app)
    for router in (
        routes_meta.router,
        routes_search.router(limits),
        routes_examples.router(limits),
        routes_rerank.router(limits),
        routes_videos.router,
        routes_ingest.router,
    ):
        app.include_router(router)
    return app
