"""Write stage: ``StoreWriter`` plus, per finished video, the nodes that decoded, encoded and wrote it."""
from __future__ import annotations

import json

import numpy as np

from pipeline.stages.decode import current_node
from pipeline.writer import StoreWriter


class WriteStage(StoreWriter):
    def __call__(self, batch: dict) -> dict:
        for col in ("decode_node", "encode_node"):
            for vid, node in zip(batch["video_id"], batch[col]):
                self.nodes.setdefault(str(vid), {}).setdefault(col, set()).add(str(node))
        out = super().__call__(batch)
        n = len(out["video_id"])
        write_node = current_node()
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
