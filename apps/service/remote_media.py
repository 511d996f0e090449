"""Serving a video that lives behind a URL (operators/remote_source.py): its bytes, by HTTP Range.

``FileResponse`` serves local files only; for an object the service reads the asked range by range requests
of its own and streams it on, so a player's seek fetches only what it plays. One range per request (a
multi-range request gets the whole object, as RFC 9110 allows a server to answer). Opening the object and
its HEAD request are bounded in time as the local file checks are (``Limits.decode_timeout_s``).
"""

from __future__ import annotations

import re
from typing import Iterator, Mapping

from fastapi import HTTPException
from fastapi.responses import StreamingResponse

from vidseek.apps.service.media import media_type
from vidseek.operators.remote_source import RemoteError, open_object

CHUNK = 256 * 1024
SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte asked for by a single-range header; None for no header or several ranges.
    An unsatisfiable range answers 416 with the object's size."""
    if not header:
        return None
    m = SINGLE_RANGE.match(header.strip())
    if not m or not (m[1] or m[2]):
        return None  # several ranges, or a unit we do not serve: the whole object
    if m[1]:
        first, last = int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1)
    else:
        first, last = max(0, size - int(m[2])), size - 1
    if first >= size or first > last:
        raise HTTPException(
            416, f"range {header!r} is outside the object ({size} bytes)", {"content-range": f"bytes */{size}"}
        )
    return first, last


def _chunks(f, first: int, length: int) -> Iterator[bytes]:
    try:
        f.seek(first)
        while length > 0:
            data = f.read(min(CHUNK, length))
            if not data:
                return
            length -= len(data)
            yield data
    finally:
        f.close()


def object_response(
    url: str, size: int, version: str, range_header: str | None, options: Mapping | None, opener=open_object
) -> StreamingResponse:
    """The object (or the asked range of it) as a streamed response, 206 for a range, with an ETag."""
    if size is None:
        raise HTTPException(502, f"{url}: the object store gives no size for it: cannot serve ranges")
    span = byte_range(range_header, size)
    first, last = span if span is not None else (0, size - 1)
    try:
        f = opener(url, options)
    except RemoteError as e:
        raise HTTPException(502, f"cannot read the video's object: {e}") from None
    headers = {
        "accept-ranges": "bytes",
        "content-length": str(last - first + 1),
        "cache-control": "private, max-age=3600",
        "content-disposition": "inline",
    }
    if version:
        headers["etag"] = '"' + version.split("=", 1)[-1].strip('"') + '"'
    if span is not None:
        headers["content-range"] = f"bytes {first}-{last}/{size}"
    return StreamingResponse(
        _chunks(f, first, last - first + 1),
        status_code=206 if span else 200,
        media_type=media_type(url),
        headers=headers,
    )
