"""A small testbed world in a store, for query-by-example tests (library, CLI, service): content clips, each two
objects of its own, decoded at fps:2 and encoded with the bundled ``testbed`` model as the index job does,
without starting Ray."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from conftest import FFMPEG

from vidseek.operators.aggregate import mean_pool
from vidseek.operators.decode import decode_frames
from vidseek.operators.encode import encode_images
from vidseek.operators.frame_table import FrameTable
from vidseek.store.video_store import VideoStore

SAMPLING = "fps:2"


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=60)


def png_at(video: Path, t: float, out: Path) -> Path:
    """ffmpeg's frame on screen at ``t``, at the file's own resolution (any image format by ``out``'s suffix)."""
    ffmpeg("-ss", f"{t:g}", "-i", str(video), "-frames:v", "1", str(out))
    return out


def fill_store(store: VideoStore, world, testbed_clip, id_of: Callable[[Path], str] | None = None) -> None:
    """The world's clips, frames decoded and encoded as the index job does; ``id_of(path)``: a clip's video id
    (default: its file name)."""
    torch.set_num_threads(1)
    d, manifest = world
    store.ensure_model(testbed_clip.stamp())
    rows = []
    for clip in manifest["clips"]:
        path = d / clip["video"]
        frames, t0, t1, summary = decode_frames(str(path), testbed_clip.preprocess, SAMPLING)
        vectors = encode_images(testbed_clip, frames)
        vid = id_of(path) if id_of else clip["video"]
        store.insert_frames(vid, FrameTable.of(np.arange(len(t0)), (t0 + t1) / 2, t0, t1, vectors))
        mean = mean_pool(torch.from_numpy(vectors)[None])[0].numpy()
        rows.append(
            {
                "video_id": vid,
                "path": str(path),
                "duration": summary.duration,
                "n_frames": len(t0),
                "sampling": SAMPLING,
                "mean_vec": mean,
            }
        )
    store.upsert_videos(rows)


def both_present_frames(clip: dict) -> set[int]:
    """The clip's frame indices with its two main objects on screen."""
    a, b = ({f for x, y in tr["present"] for f in range(x, y + 1)} for tr in clip["tracks"][:2])
    return a & b


def both_present(clip: dict, fps: int) -> float:
    """A time (s) in the middle of the frames with the clip's two main objects on screen."""
    both = sorted(both_present_frames(clip))
    return (both[len(both) // 2] + 0.5) / fps


def record_decode_limits(monkeypatch) -> list:
    """The ``DecodeLimit`` of every clip decode started from now on (retrieval/clip_frames.py's decoder)."""
    import vidseek.retrieval.clip_frames as cf
    from vidseek.operators.isolated_decode import IsolatedDecoder

    limits = []

    class Recording(IsolatedDecoder):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            limits.append(self.limit)

    monkeypatch.setattr(cf, "IsolatedDecoder", Recording)
    return limits
