"""Encode stage: ``ImageEncoder`` over a stage batch's frame rows; records pass through.

An encode error (e.g. CUDA out of memory) fails the videos whose frames were in the batch, as
``EncodeFailure`` records: the job goes on with the next batch.

``expected_stamp``: the store's model stamp, which the driver took without building the model
(pipeline/index_job.py ``job_stamp``). The model built here must give the same ``embed_dim`` and
``preprocess``, or the stage refuses to start: nothing is encoded into a store of another embedding space.
"""

from __future__ import annotations

import numpy as np

from vidseek.operators.model_stamp import describe_stamp_diff
from vidseek.operators.rows import EncodeFailure, FrameRows, from_batch, to_batch
from vidseek.pipeline.placement import record_placement
from vidseek.pipeline.specs import EncodeSpec
from vidseek.store.video_store import ModelMismatchError


class EncodeStage:
    """``EncodeStage(spec)``, as the job builds it; ``EncodeStage(**fields)`` builds the spec from its fields."""

    refusal: ModelMismatchError | None = None  # set when the built model is not the store's

    def __init__(self, spec: EncodeSpec | None = None, **fields):
        spec = spec if spec is not None else EncodeSpec(**fields)
        # imported here, in the actor: the driver names this class for Ray Data and must not pay for torch and
        # open_clip (~7 CPU-s, docs/architecture.md "A job's fixed costs")
        from vidseek.operators.encode import ImageEncoder

        self.encoder = ImageEncoder(**spec.encoder_args())
        # raised with the first batch, not here: a stage call's error reaches the driver as itself (a store
        # error the job reports in one line); a failed actor start reaches it only as Ray's text
        stored = spec.expected_stamp
        self.refusal = None if stored is None else model_refusal(stored, self.encoder.clip.stamp(), spec.store_uri)
        record_placement(
            "encode", spec.placement_dir, device=str(self.encoder.clip.device), batch_size=self.encoder.batch_size
        )

    def __call__(self, batch: dict) -> dict:
        if self.refusal is not None:
            raise self.refusal
        frames, records = from_batch(batch)
        try:
            encoded = frames.with_payload(self.encoder(frames.payload))
        except (RuntimeError, ValueError) as e:
            error = f"encode failed ({type(e).__name__}: {e})"
            records = records + [EncodeFailure(vid, path, error) for vid, path in frames.videos()]
            encoded = FrameRows.empty((self.encoder.embed_dim,), np.float32)
        return to_batch(encoded, records, payload="embedding")


def model_refusal(stored: dict, built: dict, store_uri: str) -> ModelMismatchError | None:
    """The error for a model whose embedding space differs from the store's though its name and weights
    match; None when they agree."""
    detail = describe_stamp_diff(stored, built, "store has", "the model gives")
    if detail:
        return ModelMismatchError(
            f"store {store_uri} was built with model {stored.get('model')!r} (weights {stored.get('weights')}), "
            f"and that model now builds another embedding space ({detail}): open_clip or the model's config "
            "changed since. Index into a new --store, or use the open_clip version the store was built with."
        )
    return None
