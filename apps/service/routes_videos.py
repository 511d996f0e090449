"""A video by id: GET /videos/{id} (its row), /videos/{id}/thumbnail?t= (JPEG), /videos/{id}/file (ranges).

Only the file the store records for an ``ok`` video is served, and only while it is the file indexed
(``Service.video_file``; a video indexed by URL: while its object's ETag/version is the one indexed, else 409,
or 410 once it is gone; its bytes are range reads of the object, apps/service/remote_media.py); its checks and thumbnail decodes are bounded in time (504 past
``Limits.decode_timeout_s``) and in number (``Limits.max_decodes``).
"""

from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, Response

from vidseek.apps.service.deps import FrameRenderer, ServiceDep
from vidseek.apps.service.errors import bad
from vidseek.apps.service.media import ThumbnailError, media_type
from vidseek.apps.service.remote_media import object_response
from vidseek.apps.service.schemas import VideoOut
from vidseek.apps.service.state import Service, media_urls
from vidseek.operators.remote_source import is_url
from vidseek.retrieval.bounded import CallTimeout, call_with_timeout
from vidseek.store.video_store import VIDEO_FIELDS

SLOW_DISK = "the file may be on a slow or stalled disk; try again later"
VideoId = Annotated[str, Path(description="a video id from a search hit", max_length=256)]

router = APIRouter()


def checked_file(svc: Service, video_id: str) -> tuple[str, dict]:
    """The video's file, checked to be the one indexed; its stat on a stalled mount answers 504."""
    try:
        return call_with_timeout(
            lambda: svc.video_file(video_id),
            svc.limits.decode_timeout_s,
            f"checking the file of video {video_id}",
            permits=svc.decodes,
        )
    except CallTimeout as e:
        bad(504, f"{e}: {SLOW_DISK}")


@router.get("/videos/{video_id}", response_model=VideoOut, summary="A video's row (no vectors)")
def video(video_id: VideoId, svc: ServiceDep):
    row = svc.video(video_id)
    thumb, file = media_urls(video_id) if row["status"] == "ok" else (None, None)
    return {
        **{f: row.get(f) for f in VIDEO_FIELDS},
        "metadata": dict(row.get("metadata") or {}),
        "name": FsPath(row["path"]).name,
        "thumbnail": thumb,
        "file": file,
    }


@router.get(
    "/videos/{video_id}/thumbnail",
    summary="JPEG of the frame on screen at t seconds",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def thumbnail(
    video_id: VideoId,
    svc: ServiceDep,
    render: FrameRenderer,
    t: Annotated[float, Query(description="seconds; clamped to the video", allow_inf_nan=False)] = 0.0,
):
    path, row = checked_file(svc, video_id)
    t = min(max(float(t), 0.0), max(float(row.get("duration") or 0.0), 0.0))
    key = (video_id, round(t, 2))
    data = svc.thumbs.get(key)
    if data is None:
        try:
            data = call_with_timeout(
                lambda: render(path, t, svc.limits.thumbnail_width),
                svc.limits.decode_timeout_s,
                f"thumbnail of {FsPath(path).name} at {t:.2f} s",
                permits=svc.decodes,
            )
        except ThumbnailError as e:
            bad(404, f"no frame at {t:.2f} s: {e}")
        except CallTimeout as e:
            bad(504, f"{e}: {SLOW_DISK}")
        svc.thumbs.put(key, data)
    return Response(data, media_type="image/jpeg", headers={"cache-control": "private, max-age=3600"})


@router.get(
    "/videos/{video_id}/file",
    summary="The video file (supports HTTP Range requests)",
    response_class=Response,
    responses={200: {"content": {"video/*": {}}}, 206: {"description": "range"}},
)
def video_file(video_id: VideoId, svc: ServiceDep, request: Request):
    path, row = checked_file(svc, video_id)
    if is_url(path):  # an object: streamed from range reads of it (apps/service/remote_media.py)
        try:
            return call_with_timeout(
                lambda: object_response(path, row["size"], row["version"], request.headers.get("range"), svc.storage),
                svc.limits.decode_timeout_s,
                f"opening the object of video {video_id}",
                permits=svc.decodes,
            )
        except CallTimeout as e:
            bad(504, f"{e}: the object store is slow or unreachable; try again later")
    return FileResponse(
        path,
        media_type=media_type(path),
        content_disposition_type="inline",
        headers={"cache-control": "private, max-age=3600"},
    )
