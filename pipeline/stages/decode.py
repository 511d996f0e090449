"""Decode stage: ``VideoDecoder`` plus the node that decoded each row."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import ray

from operators.decode import VideoDecoder


def current_node() -> str:
    return ray.get_runtime_context().get_node_id()


class DecodeStage(VideoDecoder):
    def __call__(self, batch: dict) -> Iterator[dict]:
        node = current_node()
        for out in super().__call__(batch):
            out["decode_node"] = np.full(len(out["kind"]), node, dtype=object)
            yield out
