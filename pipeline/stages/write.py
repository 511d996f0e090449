"""Write stage: ``StoreWriter`` built from a ``WriteSpec``: a Ray Data actor (one per job, for a Milvus server)
or the driver itself, through the store it planned with (Milvus Lite); see pipeline/index_job.py."""

from __future__ import annotations

from vidseek.pipeline.placement import record_placement
from vidseek.pipeline.specs import WriteSpec
from vidseek.pipeline.writer import StoreWriter
from vidseek.store.video_store import VideoStore


class WriteStage(StoreWriter):
    def __init__(self, spec: WriteSpec, store: VideoStore | None = None):
        super().__init__(
            spec.uri if store is None else store,
            spec.stamp,
            spec.sampling,
            prefix=spec.prefix,
            video_vectors=spec.video_vectors,
            expected=spec.expected,
            hooks=spec.hooks,
            retry_s=spec.retry_s,
            merge_similar=spec.merge_similar,
        )
        record_placement("write", spec.placement_dir)
