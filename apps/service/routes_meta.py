"""The page, its static files, liveness and what the store holds: GET /, /static/{name}, /healthz, /info."""

from functools import cache
from pathlib import Path as FsPath
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from vidseek.apps.service.deps import ServiceDep

STATIC = FsPath(__file__).parent / "static"
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

router = APIRouter()


@cache
def static_files() -> dict[str, tuple[bytes, str]]:
    """Every file of static/ by name: its bytes and media type (read once)."""
    return {
        p.name: (p.read_bytes(), STATIC_TYPES.get(p.suffix, "application/octet-stream"))
        for p in STATIC.iterdir()
        if p.is_file()
    }


def _static(name: str) -> Response:
    data, kind = static_files()[name]
    return Response(data, media_type=kind, headers={"cache-control": "no-cache"})


@router.get("/", include_in_schema=False)
def page():
    return _static("index.html")


@router.get("/static/{name}", include_in_schema=False)
def static_file(name: str):
    if name not in static_files():
        raise HTTPException(404, "not found")
    return _static(name)


@router.get("/healthz", summary="Liveness (no token needed)")
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/info", summary="What the store holds: model, videos by status, frames, thinning")
def info(svc: ServiceDep) -> dict[str, Any]:
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
