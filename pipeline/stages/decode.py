"""Decode stage: ``VideoDecoder`` run as Ray tasks (one video per task) at a lower CPU priority.

Tasks, not an actor pool: decoding holds no state worth keeping between videos (Ray reuses the worker
process, so imports happen once per process), and Ray Data (2.60) fails a whole job when its actor-pool
autoscaler cancels a pool actor that is still starting — seen on a two-node cluster whose second node
was slow to start a worker. A task that is not placed yet is simply not run yet.

Decoders are the job's bulk work and run one per core; the CLIP actor, the writer and the driver need
little CPU but need it promptly (CLIP is the slow stage on a CPU-only node, and its seconds-long start-up
would otherwise queue behind the decoders). A niced decoder takes whatever CPU the others leave.
"""

from __future__ import annotations

import os
from typing import Iterator

from vidseek.operators.isolated_decode import DecodeLimit, IsolatedDecoder
from vidseek.pipeline.placement import record_placement

DECODE_NICE = int(os.environ.get("VIDSEEK_DECODE_NICE", "10"))  # 0: same priority as the other stages


_decoders: dict[tuple, IsolatedDecoder] = {}  # per worker process: its decoder child lives across tasks


def decode_batch(
    batch: dict,
    preprocess: dict,
    sampling: str,
    chunk_frames: int,
    limit: tuple[float, float] = (DecodeLimit.base_s, DecodeLimit.per_video_s),
    options: dict | None = None,
) -> Iterator[dict]:
    """Ray Data ``map_batches`` function: input rows (path, video_id, extra) -> stage batches of frame rows
    and ``VideoEnd`` records (operators/rows.py).

    Each video is decoded in this worker's child process under ``limit`` (base s, s per video second):
    a video that blocks or runs away becomes a failed end record, and a fresh child takes the next one
    (operators/isolated_decode.py). ``options``: VideoDecoder keyword arguments (backend, skip_loop_filter)."""
    if DECODE_NICE:  # absolute, not os.nice (cumulative): the worker process runs many decode tasks
        os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), DECODE_NICE))
    record_placement("decode")
    options = options or {}
    key = (repr(sorted(preprocess.items())), sampling, chunk_frames, tuple(limit), repr(sorted(options.items())))
    decoder = _decoders.get(key)
    if decoder is None:
        for old in _decoders.values():
            old.close()
        _decoders.clear()
        decoder = _decoders[key] = IsolatedDecoder(preprocess, sampling, chunk_frames, DecodeLimit(*limit), options)
    yield from decoder(batch)
