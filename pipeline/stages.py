"""Ray-side wrappers of the operators: the same callables, plus the node each row was processed on.

The node columns make placement observable (a summary of which nodes decoded, encoded and wrote), which is
how the two-node test proves that work ran on both nodes.
"""
from __future__ import annotations

import json
from typing import Iterator

import numpy as np
import ray

from operators.decode import VideoDecoder
from operators.encode import ImageEncoder
from pipeline.writer import StoreWriter


def _node() -> str:
    return ray.get_runtime_context().get_node_id()


class DecodeStage(VideoDecoder):
    def __call__(self, batch: dict) -> Iterator[dict]:
        node = _node()
        for out in super().__call__(batch):
            out["decode_node"] = np.full(len(out["kind"]), node, dtype=object)
            yield out


class EncodeStage(ImageEncoder):
    def __call__(self, batch: dict) -> dict:
        out = super().__call__(batch)
        out["encode_node"] = np.full(len(out["kind"]), _node(), dtype=object)
        return out


class WriteStage(StoreWriter):
    def __call__(self, batch: dict) -> dict:
        for col in ("decode_node", "encode_node"):
            for vid, node in zip(batch["video_id"], batch[col]):
                self.nodes.setdefault(str(vid), {}).setdefault(col, set()).add(str(node))
        out = super().__call__(batch)
        n = len(out["video_id"])
        write_node = _node()
        out["nodes"] = np.array([json.dumps(
            {"decode": sorted(self.nodes.get(v, {}).get("decode_node", ())),
             "encode": sorted(self.nodes.get(v, {}).get("encode_node", ())),
             "write": [write_node]}) for v in out["video_id"]], dtype=object) if n else np.array([], dtype=object)
        for v in out["video_id"]:
            self.nodes.pop(str(v), None)
        return out

    @property
    def nodes(self) -> dict:
        if not hasattr(self, "_nodes"):
            self._nodes = {}
        return self._nodes
