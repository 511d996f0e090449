"""Thumbnails (the frame on screen at t, as JPEG) and media types for the service's file endpoints."""

from __future__ import annotations

import io
import mimetypes
import threading
from collections import OrderedDict

import av

from vidseek.operators.ffmpeg_log import quiet_ffmpeg
from vidseek.operators.remote_source import RemoteError, media_input

MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
    ".ogv": "video/ogg",
    ".ts": "video/mp2t",
    ".mpg": "video/mpeg",
    ".mpeg": "video/mpeg",
    ".flv": "video/x-flv",
    ".3gp": "video/3gpp",
    ".wmv": "video/x-ms-wmv",
}


class ThumbnailError(Exception):
    pass


def media_type(path: str) -> str:
    suffix = path[path.rfind(".") :].lower() if "." in path else ""
    return MEDIA_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def frame_jpeg(path: str, t: float, width: int = 320, quality: int = 80, storage_options=None) -> bytes:
    """JPEG of the frame on screen at ``t`` seconds (the last frame starting at or before t; the first
    frame when t precedes it), ``width`` px wide, display rotation applied. A URL is read by range requests
    (``storage_options``: its credentials; operators/remote_source.py)."""
    quiet_ffmpeg()  # never a Python log callback on FFmpeg's frame threads (see operators/ffmpeg_log.py)
    try:
        with media_input(path, storage_options) as src, av.open(src) as c:
            if not c.streams.video:
                raise ThumbnailError("no video stream")
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            if t > 0 and s.time_base:
                c.seek(int(t / s.time_base), stream=s, backward=True, any_frame=False)  # key frame ≤ t
            best = None
            for frame in c.decode(s):
                if best is not None and frame.time is not None and frame.time > t + 1e-6:
                    break
                best = frame
            if best is None:
                raise ThumbnailError("no decodable frame")
            img = best.to_image()
            rotation = int(getattr(best, "rotation", 0) or 0) % 360
    except RemoteError as e:
        raise ThumbnailError(f"cannot read the video's object ({e.kind})") from e
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise ThumbnailError(f"cannot decode the video ({type(e).__name__})") from e
    if rotation:
        img = img.rotate(rotation, expand=True)  # PIL and PyAV: degrees counter-clockwise
    if img.width != width:
        img = img.resize((width, max(1, round(img.height * width / img.width))))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class ThumbnailCache:
    """LRU of JPEG bytes by (video id, t rounded to 10 ms); a video id names one file version."""

    def __init__(self, max_items: int = 512):
        self.max_items = max_items
        self._items: OrderedDict[tuple[str, float], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, float]) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: tuple[str, float], data: bytes) -> None:
        with self._lock:
            self._items[key] = data
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
