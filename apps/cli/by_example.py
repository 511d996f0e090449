"""``vidseek search --image`` and ``--video``: query by example (docs/copies.md), printed as text search is.

``main.search`` checks the arguments with ``check_example_args`` before the store opens, then calls
``image_result`` or ``clip_result``: each returns the JSON object (``--json``) and what the text output prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the decoder's modules load when a clip is searched, not when the CLI starts
    from vidseek.operators.isolated_decode import DecodeLimit

FORMATS = "JPEG, PNG or WebP"


def check_example_args(
    query: str | None, image: Path | None, video: Path | None, start: float | None, end: float | None, weight: float
) -> None:
    """ValueError (its message says what to give instead) for a combination the search cannot run."""
    if image is not None and video is not None:
        raise ValueError("give --image or --video, not both (an image query and a clip query are separate searches)")
    if video is not None and query is not None:
        raise ValueError("a clip query (--video) takes no TEXT; TEXT steers an --image query or searches alone")
    if image is None and video is None and query is None:
        raise ValueError("give a TEXT query, --image FILE or --video FILE")
    if (start is not None or end is not None) and video is None:
        raise ValueError("--start/--end choose the part of the --video clip to search with: give --video")
    if start is not None and end is not None and start >= end:
        raise ValueError(f"--start ({start:g} s) must be before --end ({end:g} s)")
    if min(start or 0.0, end or 0.0) < 0:
        raise ValueError("--start and --end are seconds from the clip's start: not negative")
    if not 0 <= weight <= 1:
        raise ValueError(f"--image-weight {weight:g}: must be in [0, 1] (0: the text alone, 1: the image alone)")
    if image is not None and not image.is_file():
        raise ValueError(f"{image}: no such file; --image takes a {FORMATS} file")
    if video is not None and not video.is_file():
        raise ValueError(f"{video}: no such file; --video takes a video file")


def require_frames(searcher) -> None:
    """A query by example compares frames: a store that holds none cannot answer it."""
    from vidseek.retrieval.query_by_example import no_frames_message

    if not searcher.store.count_frames():
        raise ValueError(no_frames_message(f"store {searcher.store.uri}") + " (`vidseek index SOURCE --store ...`)")


def image_result(searcher, image: Path, query: str | None, weight: float, params) -> tuple[dict, list, str]:
    """Hits for an image (fused with ``query`` when given): (JSON object, the hits, their header line)."""
    from vidseek.retrieval.query_by_example import search_image

    require_frames(searcher)
    # an image that is no JPEG, PNG or WebP raises QueryImageError (a ValueError): its message names the file
    hits = search_image(searcher, image, params, text=query, weight=weight)
    label = f"image {image.name}" + (f" + {query!r} (image weight {weight:g})" if query is not None else "")
    out = {"query": query, "image": str(image), "image_weight": weight, "hits": [h.as_dict() for h in hits]}
    return out, hits, label


def clip_result(
    searcher, video: Path, start: float | None, end: float | None, params, limit: DecodeLimit
) -> tuple[dict, str]:
    """Hits for a clip of ``video`` between ``start`` and ``end``, decoded under ``limit`` (--decode-timeout):
    (JSON object, text)."""
    from vidseek.operators.decode import DecodeError
    from vidseek.retrieval.query_by_example import search_clip

    require_frames(searcher)
    try:
        hits = search_clip(searcher, video, start, end, params, limit=limit)
    except DecodeError as e:
        raise ValueError(f"{video}: the clip cannot be decoded ({e}); give a video file FFmpeg can read") from e
    out = {"video": str(video), "start": start, "end": end, "hits": [h.as_dict() for h in hits]}
    return out, format_clip_hits(video, start, end, hits)


def format_clip_hits(video: Path, start: float | None, end: float | None, hits: list) -> str:
    part = "" if start is None and end is None else f" {start or 0:.1f}–{'end' if end is None else f'{end:.1f}'} s"
    lines = [f"clip: {video.name}{part}"]
    if not hits:
        lines.append("  (no hits)")
    for i, h in enumerate(hits, 1):
        (s0, s1), (q0, q1) = h.segment, h.query_segment
        how = f"coverage {h.coverage:.2f}" if h.aligned else "not aligned: best frame pair"
        lines.append(
            f"  {i:2d}. {h.score:7.4f}  {Path(h.path).name}  video {s0:.1f}–{s1:.1f} s ↔ clip {q0:.1f}–{q1:.1f} s "
            f"(similarity {h.similarity:.3f}, {how})"
        )
    return "\n".join(lines)
