"""Encode stage: ``ImageEncoder`` plus the node that encoded each row."""
from __future__ import annotations

import numpy as np

from operators.encode import ImageEncoder
from pipeline.stages.decode import current_node


class EncodeStage(ImageEncoder):
    def __call__(self, batch: dict) -> dict:
        out = super().__call__(batch)
        out["encode_node"] = np.full(len(out["kind"]), current_node(), dtype=object)
        return out
