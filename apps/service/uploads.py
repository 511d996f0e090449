"""Uploaded query files: the declared type checked, an image read once, a clip streamed to a temp file whose
name comes from the container its first bytes show (docs/copies.md, "From the command line and the service").

A clip goes to FFmpeg, which picks its demuxer from the file's content and name: a playlist (HLS ``.m3u8``,
``concat``) would make it open other local files or URLs. So only the containers the index decodes are
taken, sniffed from their magic bytes, and the temp file is named by what was sniffed, never by the
client's file name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Iterator

from fastapi import UploadFile

from vidseek.apps.service.errors import bad

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
CLIP_TYPES = ("video/", "application/octet-stream")  # a type starting so; browsers send the file's own
CONTAINERS = "MP4/MOV, Matroska/WebM or AVI"
TEMP_PREFIX = "vidseek-clip-"


def sniff_container(head: bytes) -> str | None:
    """The file suffix of the container whose magic bytes ``head`` (the first 12 or more) starts with, or
    None: ISO BMFF (MP4, MOV: ``ftyp`` at offset 4), Matroska/WebM (EBML 1A 45 DF A3), AVI (RIFF....AVI )."""
    if head[4:8] == b"ftyp":
        return ".mov" if head[8:12] == b"qt  " else ".mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return ".mkv"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return ".avi"
    return None


def name_of(upload: UploadFile, default: str) -> str:
    return upload.filename or default


def check_type(upload: UploadFile, types: tuple[str, ...], what: str) -> None:
    """415 unless the part's declared content type is one of ``types`` (``video/`` takes any video type)."""
    kind = (upload.content_type or "").split(";")[0].strip().lower()
    if not any(kind == t or (t.endswith("/") and kind.startswith(t)) for t in types):
        bad(415, f"{name_of(upload, 'the upload')}: {kind or 'no content type'}; upload {what}")


def read_image(upload: UploadFile) -> bytes:
    """The image's bytes (bounded by the front door's per-path limit): Pillow decodes from them."""
    check_type(upload, IMAGE_TYPES, "a JPEG, PNG or WebP image")
    data = upload.file.read()
    if not data:
        bad(422, f"{name_of(upload, 'the upload')}: empty file")
    return data


@contextmanager
def saved_clip(upload: UploadFile) -> Iterator[str]:
    """The uploaded clip in a temp file (copied in blocks, never whole in memory), removed on leaving."""
    check_type(upload, CLIP_TYPES, "a video file")
    name = name_of(upload, "the upload")
    head = upload.file.read(16)
    if not head:
        bad(422, f"{name}: empty file")
    suffix = sniff_container(head)
    if suffix is None:
        bad(415, f"{name}: not an {CONTAINERS} file (by its first bytes); upload a video in one of those")
    upload.file.seek(0)
    fd, path = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(upload.file, f)
        yield path
    finally:
        os.unlink(path)
