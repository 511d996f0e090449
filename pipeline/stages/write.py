"""Write stage: ``StoreWriter`` as a Ray Data actor (one per job; see pipeline/index_job.py for placement)."""

from __future__ import annotations

from vidseek.pipeline.placement import record_placement
from vidseek.pipeline.writer import StoreWriter


class WriteStage(StoreWriter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        record_placement("write")
