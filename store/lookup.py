"""Matching a video reference (a dataset's, another system's run's) to a store video id."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vidseek.store.video_store import VideoStore


class VideoLookup:
    """Match a video reference from a dataset or another system's run to a store video id.

    A reference matches by video id, by absolute path, or by file stem (``video123`` for
    ``/lib/video123.mp4``), in that order; only ``ok`` videos are considered. Built once per store read.
    """

    def __init__(self, store: "VideoStore"):
        self.keys: dict[str, str] = {}
        for r in store.video_records('status == "ok"', ["video_id", "path"]):
            self.keys.setdefault(Path(r["path"]).stem, r["video_id"])
            self.keys[r["path"]] = r["video_id"]
            self.keys[r["video_id"]] = r["video_id"]

    def find(self, ref: str | None) -> str | None:
        if not ref:
            return None
        for key in (ref, str(Path(ref).absolute()), Path(ref).stem):
            if key in self.keys:
                return self.keys[key]
        return None
