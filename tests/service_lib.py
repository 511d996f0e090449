"""Helpers for the service tests: a small real library indexed without Ray, and a live uvicorn server.

``direct_index`` has ``run_index``'s signature and writes through the given store the way the writer does
(frames first, the video row last), decoding and encoding in this process: the service's ingest machinery
is tested without a Ray start (tens of seconds on a small machine). One slow test runs the real job.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import torch

from vidseek.operators.aggregate import mean_pool
from vidseek.operators.decode import DecodeError, DecodeSummary, VideoDecoder
from vidseek.operators.encode import encode_images, load_clip
from vidseek.operators.frame_table import FrameTable
from vidseek.pipeline.index_job import IndexSummary
from vidseek.pipeline.sources import discover
from vidseek.store.video_store import VideoStore


def index_video(
    store: VideoStore,
    clip,
    path: str,
    video_id: str,
    sampling: str = "fps:1",
    metadata: dict | None = None,
    delay_s: float = 0.0,
    storage_options: dict | None = None,
) -> dict:
    """Decode, encode and write one video (frame rows, then its video row); returns the row. A URL is read with
    ``storage_options``."""
    summary = DecodeSummary()
    row = {"video_id": video_id, "path": path, "sampling": sampling, "metadata": metadata or {}}
    vectors = []
    try:
        for chunk in VideoDecoder(clip.preprocess, sampling, storage_options=storage_options).decode(path, summary):
            emb = encode_images(clip, chunk.frames)
            store.insert_frames(video_id, FrameTable.of(chunk.idx, chunk.t, chunk.t_start, chunk.t_end, emb))
            vectors.append(emb)
            time.sleep(delay_s)  # lets tests search while a video is half written
        if not vectors:
            raise DecodeError(f"{path}: no decodable frames")
    except DecodeError as e:
        store.delete_frames([video_id])
        row.update(status="failed", stage="decode", error=str(e), n_frames=0)
    else:
        v = torch.from_numpy(np.concatenate(vectors))
        row.update(
            status="ok",
            n_frames=len(v),
            duration=summary.duration,
            decoder=summary.decoder,
            mean_vec=mean_pool(v.unsqueeze(0))[0].numpy(),
        )
    store.upsert_videos([row])
    return row


def direct_index(cfg, store: VideoStore, delay_s: float = 0.0, gate: threading.Event | None = None) -> IndexSummary:
    """``run_index(cfg, store=store)`` without Ray (see the module docstring)."""
    t0 = time.perf_counter()
    clip = load_clip(cfg.model, cfg.pretrained, device="cpu")
    store.ensure_model(clip.stamp())
    sources = discover(cfg.source)
    if gate is not None:
        gate.wait(30)
    done = {r["video_id"]: r["status"] for r in store.video_records(fields=["video_id", "status"])}
    summary = IndexSummary()
    for s in sources:
        if done.get(s.video_id) == "ok":
            summary.skipped += 1
            continue
        store.delete_videos([s.video_id])
        row = index_video(store, clip, s.path, s.video_id, cfg.sampling, s.metadata, delay_s)
        if row["status"] == "ok":
            summary.indexed += 1
            summary.frames += row["n_frames"]
        else:
            summary.failed += 1
            summary.errors.append({"path": s.path, "stage": "decode", "reason": row["error"]})
    summary.wall_s = time.perf_counter() - t0
    return summary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a thread: ``with LiveServer(app) as base_url: …``."""

    def __init__(self, app, port: int | None = None):
        import uvicorn

        self.port = port or free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def small_library(root: Path, ffmpeg) -> dict[str, Path]:
    """Generated clips: ``redblue.mp4`` (2 s red, then 2 s blue), ``bars.mp4`` (3 s SMPTE bars),
    ``clock.webm`` (3 s testsrc, VP9)."""
    root.mkdir(parents=True, exist_ok=True)
    clips = {"redblue": root / "redblue.mp4", "bars": root / "bars.mp4", "clock": root / "clock.webm"}
    if not clips["redblue"].exists():
        ffmpeg(
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=160x120:r=25:d=2",
            "-f",
            "lavfi",
            "-i",
            "color=c=blue:s=160x120:r=25:d=2",
            "-filter_complex",
            "[0:v][1:v]concat=n=2:v=1[v]",
            "-map",
            "[v]",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "25",
            "-movflags",
            "+faststart",
            str(clips["redblue"]),
        )
    if not clips["bars"].exists():
        ffmpeg(
            "-f",
            "lavfi",
            "-i",
            "smptebars=size=160x120:rate=25:duration=3",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "25",
            "-movflags",
            "+faststart",
            str(clips["bars"]),
        )
    if not clips["clock"].exists():
        ffmpeg(
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=25:duration=3",
            "-c:v",
            "libvpx-vp9",
            "-b:v",
            "200k",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-g",
            "25",
            str(clips["clock"]),
        )
    return clips
