"""Where each stage ran, for tests of a multi-node or multi-GPU job: off unless ``VIDSEEK_PLACEMENT_DIR``
names a folder.

Each stage process then writes one JSON line per stage to a file of its own in that folder: the stage,
the Ray node id and how many GPUs it has, the pid, whether it is an actor, the CUDA_VISIBLE_DEVICES Ray
gave it, and what the stage adds (the encoder: its device and batch size). Set the variable on the nodes' ``ray start``: Ray's workers inherit their
raylet's environment. Nothing rides on the job's rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import ray

PLACEMENT_DIR_ENV = "VIDSEEK_PLACEMENT_DIR"
_recorded: set[str] = set()  # per process: one line per stage


def record_placement(stage: str, **facts) -> None:
    folder = os.environ.get(PLACEMENT_DIR_ENV)
    if not folder or stage in _recorded:
        return
    _recorded.add(stage)
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
    node_gpus = (
        next((n["Resources"].get("GPU", 0) for n in ray.nodes() if n["NodeID"] == node), 0)
        if ray.is_initialized()
        else 0
    )
    record = {
        "stage": stage,
        "node": node,
        "node_gpus": node_gpus,  # GPUs the node declares
        "pid": os.getpid(),
        # a Ray actor (a pool's stage, a server's writer), or a task or the driver itself (Lite's writer)
        "actor": bool(ray.is_initialized() and ray.get_runtime_context().get_actor_id()),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        **facts,
    }
    with open(Path(folder) / f"{stage}-{os.getpid()}.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def read_placement(folder: str | Path) -> list[dict]:
    """Every record ``record_placement`` wrote to ``folder``."""
    return [json.loads(line) for path in sorted(Path(folder).glob("*.jsonl")) for line in path.read_text().splitlines()]


def nodes_by_stage(records: list[dict]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in records:
        out.setdefault(r["stage"], set()).add(r["node"])
    return out
