"""Encode stage: ``ImageEncoder`` over a stage batch's frame rows; records pass through.

An encode error (e.g. CUDA out of memory) fails the videos whose frames were in the batch, as
``EncodeFailure`` records: the job goes on with the next batch.
"""

from __future__ import annotations

import numpy as np

from vidseek.operators.encode import ImageEncoder
from vidseek.operators.rows import EncodeFailure, FrameRows, from_batch, to_batch
from vidseek.pipeline.placement import record_placement


class EncodeStage:
    def __init__(self, **encoder_args):
        self.encoder = ImageEncoder(**encoder_args)
        record_placement("encode", device=str(self.encoder.clip.device), batch_size=self.encoder.batch_size)

    def __call__(self, batch: dict) -> dict:
        frames, records = from_batch(batch)
        try:
            encoded = frames.with_payload(self.encoder(frames.payload))
        except (RuntimeError, ValueError) as e:
            error = f"encode failed ({type(e).__name__}: {e})"
            records = records + [EncodeFailure(vid, path, error) for vid, path in frames.videos()]
            encoded = FrameRows.empty((self.encoder.embed_dim,), np.float32)
        return to_batch(encoded, records, payload="embedding")
