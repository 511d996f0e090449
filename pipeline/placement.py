"""Where each stage ran, for tests of a multi-node job: off unless ``VIDSEEK_PLACEMENT_DIR`` names a folder.

Each stage process then writes ``<stage> <Ray node id>`` to a file of its own in that folder (set the
variable on the nodes' ``ray start``: Ray's workers inherit their raylet's environment). Nothing rides on
the job's rows.
"""

from __future__ import annotations

import os
from pathlib import Path

import ray

PLACEMENT_DIR_ENV = "VIDSEEK_PLACEMENT_DIR"
_recorded: set[str] = set()  # per process: one line per stage


def record_placement(stage: str) -> None:
    folder = os.environ.get(PLACEMENT_DIR_ENV)
    if not folder or stage in _recorded:
        return
    _recorded.add(stage)
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
    with open(Path(folder) / f"{stage}-{os.getpid()}.txt", "a") as f:
        f.write(f"{stage} {node}\n")


def read_placement(folder: str | Path) -> dict[str, set[str]]:
    """stage -> the node ids that ran it, from what ``record_placement`` wrote."""
    out: dict[str, set[str]] = {}
    for path in Path(folder).glob("*.txt"):
        for line in path.read_text().splitlines():
            stage, node = line.split()
            out.setdefault(stage, set()).add(node)
    return out
