"""bench/grouping_depth.py at smoke size on a Milvus 2.3.5 server of this module's own.

Its own server (the ``milvus`` fixture is per module): on a server where another collection's frames were just
thinned, a compaction of a new collection stayed "Executing" for minutes (seen with
tests/test_milvus_server.py's compressed-index test before it), and the bench waits for compaction before timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_grouping_depth_bench_times_both_modes_and_their_recall(milvus):
    proc = subprocess.run(
        [sys.executable, "bench/grouping_depth.py", "--server", milvus, "--stores", "60x40", "--queries", "4",
         "--k", "10", "--settle-timeout", "300", "--json"],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=420,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "settle: compaction" not in proc.stderr, proc.stderr[-2000:]  # timed on a settled server
    out = json.loads(proc.stdout.strip().splitlines()[-1])["60x40"]
    for mode in ("pinned", "learned"):
        assert out[mode]["p50_ms"] > 0 and out[mode]["searches_per_query"] >= 1
        assert 0 < out[mode]["recall_at_10_vs_exact"] <= 1
    assert out["learned_fanout"] >= 10
    assert out["learned_repeat_same_videos"].endswith("/4")
