"""Where each stage ran, for tests of a multi-node or multi-GPU job: off unless the job's hooks name a folder
(``JobHooks.placement_dir``, pipeline/specs.py; a process's entry point reads it from ``VIDSEEK_PLACEMENT_DIR``).

Each stage process then writes one JSON line per stage to a file of its own in that folder: the stage,
the Ray node id and how many GPUs it has, the pid, whether it is an actor, the CUDA_VISIBLE_DEVICES Ray
gave it, and what the stage adds (the encoder: its device and batch size). The folder reaches the stages in
their specs, so every node must see it at the same path (one machine, or a shared file system). Nothing
rides on the job's rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

PLACEMENT_DIR_ENV = "VIDSEEK_PLACEMENT_DIR"
_recorded: set[str] = set()  # per process: one line per stage


def record_placement(stage: str, folder: str | None, **facts) -> None:
    """One line for ``stage`` in ``folder`` (None: nothing recorded), once per process."""
    if not folder or stage in _recorded:
        return
    _recorded.add(stage)
    import ray  # here, not at the top: the driver imports this module with the job's specs, before Ray starts

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
