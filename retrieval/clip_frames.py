"""A query clip's frames (docs/copies.md, "Video-clip query"): decoded as the index job decodes, only as far
as the part searched with.

- The decoder runs in a child process under a time limit (``IsolatedDecoder``): the caller chooses it, as a
  clip's duration is whatever its file's header says (the service gives a fixed one, the CLI the configured
  ``--decode-timeout``).
- Chunks come in time order: once a chunk's last frame starts at or after ``end``, nothing later can be in
  the part, so reading stops there and the child is closed — a few seconds of a two-hour file decode the
  frames up to ``end``, not the whole file.
- ``max_frames``: more sampled frames than this in the part is an error (what a service caps per request).
- A store sampled ``uniform:N`` has N frames per video; N frames over a whole file would leave 0-1 inside a
  part of it, so a part is sampled with N frames of its own (``clip_sampling``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidseek.operators.encode import LoadedClip, encode_images
from vidseek.operators.frame_table import FrameTable
from vidseek.operators.isolated_decode import TIMEOUT_HINT, DecodeLimit, IsolatedDecoder
from vidseek.operators.rows import VideoEnd
from vidseek.operators.sampling import SamplingPlan

CHUNK_FRAMES = 64  # frames per decoded chunk: reading stops at the first chunk that reaches past the part
FIELDS = ("idx", "t", "t_start", "t_end", "payload")


def describe_part(start: float | None, end: float | None) -> str:
    """The part of a clip in words that fit the CLI and the service: "from 3 s to 8 s", "up to 5 s"."""
    if start is None and end is None:
        return "in the whole clip"
    if end is None:
        return f"from {start:g} s to the clip's end"
    return f"from {start or 0:g} s to {end:g} s"


def clip_sampling(sampling: str, path: str | Path, start: float | None, end: float | None) -> str:
    """The plan a part [start, end] of a clip is decoded with: the store's, but for ``uniform:N`` N samples
    of the part (``fps:N/length``: one per length/N seconds, on that grid from the clip's 0 s, so N or
    N + 1 samples overlap the part). No part, or no known length: the store's plan unchanged."""
    plan = SamplingPlan.parse(sampling)
    if plan.kind != "uniform" or (start is None and end is None):
        return str(plan)
    from vidseek.operators.decode import DecodeError, probe

    try:
        duration = probe(str(path)).duration
    except DecodeError:
        duration = None  # the decode reports what is wrong with the file
    known = [x for x in (end, duration) if x]
    length = min(known) - (start or 0.0) if known else 0.0
    if length <= 0:
        return str(plan)  # no known length, or past the clip's end (no sample there: the caller says so)
    return f"fps:{plan.value / length:.9g}"


def clip_frames(
    clip: LoadedClip,
    path: str | Path,
    sampling: str,
    start: float | None = None,
    end: float | None = None,
    limit: DecodeLimit = DecodeLimit(),
    max_frames: int | None = None,
) -> tuple[FrameTable, np.ndarray]:
    """The clip's sampled frames between ``start`` and ``end`` (s): their table (raw vectors) and pixels.

    Raises ``DecodeError`` for a file that cannot be decoded (or not within ``limit``), ValueError for an
    empty part or one of more than ``max_frames`` samples."""
    if start is not None and end is not None and end <= start:
        raise ValueError(f"the clip's end ({end:g} s) must be after its start ({start:g} s)")
    plan = clip_sampling(sampling, path, start, end)
    decoder = IsolatedDecoder(clip.preprocess.as_dict(), plan, CHUNK_FRAMES, limit)
    items = decoder.iter_video(str(path), str(path))
    try:
        rows = _part_rows(items, start, end, max_frames, path)
    finally:
        items.close()  # also when reading stopped before the end: the child is killed, decoding stops
        decoder.close()
    if not len(rows["t"]):
        raise ValueError(f"{path}: no sampled frame {describe_part(start, end)} (is the clip that long?)")
    pixels = rows["payload"]
    t0 = np.maximum(rows["t_start"], start or 0.0)
    t1 = np.minimum(rows["t_end"], end if end is not None else np.inf)
    return FrameTable.of(rows["idx"], rows["t"], t0, t1, encode_images(clip, pixels)), pixels


def _part_rows(items, start: float | None, end: float | None, max_frames: int | None, path) -> dict:
    """The decoded rows overlapping [start, end), read until a chunk reaches ``end`` (see the module doc)."""
    from vidseek.operators.decode import DecodeError

    kept: dict[str, list] = {k: [] for k in FIELDS}
    n = 0
    for item in items:
        if isinstance(item, VideoEnd):
            if not item.ok:  # a timeout's hint names the index job's option: not the caller's remedy here
                raise DecodeError(
                    item.error.replace(TIMEOUT_HINT, "search with a shorter part of it, or a shorter file")
                )
            break
        keep = np.ones(len(item), bool)
        if start is not None:
            keep &= item.t_end > start
        if end is not None:
            keep &= item.t_start < end
        for k in FIELDS:
            kept[k].append(getattr(item, k)[keep])
        n += int(keep.sum())
        if max_frames is not None and n > max_frames:
            raise ValueError(
                f"{path}: more than {max_frames} sampled frames {describe_part(start, end)}; "
                "search with a shorter part of it (start and end)"
            )
        if end is not None and len(item) and item.t_start[-1] >= end:
            break  # chunks come in time order: every later one starts after the part
    if not kept["t"]:
        return {k: np.zeros(0) for k in FIELDS}
    return {k: np.concatenate(v) for k, v in kept.items()}
