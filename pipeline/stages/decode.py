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

from vidseek.operators.isolated_decode import IsolatedDecoder
from vidseek.pipeline.placement import record_placement
from vidseek.pipeline.specs import DecodeSpec

DECODE_NICE = int(os.environ.get("VIDSEEK_DECODE_NICE", "10"))  # 0: same priority as the other stages


_decoders: dict[str, IsolatedDecoder] = {}  # per worker process: its decoder child lives across tasks


def decode_batch(batch: dict, spec: DecodeSpec) -> Iterator[dict]:
    """Ray Data ``map_batches`` function: input rows (``VideoSource``s, operators/rows.py ``source_items``)
    -> stage batches of frame rows and ``VideoEnd`` records.

    Each video is decoded in this worker's child process under ``spec.limit`` (base s, s per video second):
    a video that blocks or runs away becomes a failed end record, and a fresh child takes the next one
    (operators/isolated_decode.py). ``spec.decoder``: the VideoDecoder's arguments."""
    if DECODE_NICE:  # absolute, not os.nice (cumulative): the worker process runs many decode tasks
        os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), DECODE_NICE))
    record_placement("decode", spec.placement_dir)
    key = repr((spec.decoder.key(), spec.limit))
    decoder = _decoders.get(key)
    if decoder is None:  # another job's spec: its decoder's child goes
        for old in _decoders.values():
            old.close()
        _decoders.clear()
        decoder = _decoders[key] = IsolatedDecoder.of(spec.decoder, spec.limit)
    yield from decoder(batch)
