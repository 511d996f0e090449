"""A successful index job prints nothing that looks like an error (Ray's benign lines go to the log)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_index_job import make_clip

from vidseek.pipeline.quiet_ray import _pump

ROOT = Path(__file__).resolve().parents[1]
BENIGN_E = (
    b"[2026-12-01 09:06:04,359 E 23605 23605] core_worker.cc:2465: Actor with class name: "
    b"'MapWorker(MapBatches(EncodeStage))' and ID: '3f0ac33748d6f3ded4fd27bb01000000' has constructor "
    b"arguments in the object store and max_restarts > 0. If the arguments ... for more details.\n"
)


def _filtered(data: bytes, show: bool = False) -> bytes:
    r, w = os.pipe()
    _pump(io.BufferedReader(io.BytesIO(data)), w, show)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        return f.read()


def test_filter_drops_only_the_known_benign_line():
    real = b"[2026-12-01 09:06:05,000 E 1 1] raylet_client.cc:10: Connection refused\n"
    bar = b"\r 50%|#####     | 6/12"
    assert _filtered(BENIGN_E + real + b"warning: a real one\n" + bar) == real + b"warning: a real one\n" + bar
    assert _filtered(BENIGN_E, show=True) == BENIGN_E  # vidseek index -v shows it


@pytest.mark.ray
@pytest.mark.slow
def test_a_successful_index_prints_no_error_looking_line(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(3):
        make_clip(lib / f"c{i}.mp4", 2)
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}  # Ray's default: the notice case
    r = subprocess.run(
        [sys.executable, "-m", "vidseek", "index", str(lib), "--store", str(tmp_path / "s.db")],
        cwd=ROOT,
        env=dict(env, HF_HUB_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "indexed 3" in r.stdout
    looks_bad = re.compile(
        r"\] .*\.cc:\d+:| E \d+ \d+\]|Token authentication|Traceback|ERROR|WARNING|Error"
        r"|^[IWEF]\d{4} [\d:.]+ +\d+ \S+\.cc:\d+\]",  # a C++ log line (gRPC's, absl's format), any level
        re.IGNORECASE,
    )
    bad = [line for line in (r.stdout + r.stderr).splitlines() if looks_bad.search(line)]
    assert not bad, bad


def test_ray_s_dashboard_start_failure_goes_to_the_log_at_info(caplog):
    """Seen in fresh-clone CI run 20: Ray's API server missed its start and Ray logged ERROR lines."""
    import logging

    from vidseek.pipeline.quiet_ray import quiet_dashboard_failure

    quiet_dashboard_failure()
    ray_log = logging.getLogger("ray._private.services")
    with caplog.at_level(logging.INFO):
        ray_log.error("Failed to start the dashboard , return code -6")
        ray_log.error("GCS did something else")
    by_logger = [(r.name, r.levelno) for r in caplog.records]
    assert ("vidseek.ray", logging.INFO) in by_logger
    assert ("ray._private.services", logging.ERROR) in by_logger  # other Ray errors still show
    assert not any(r.name == "ray._private.services" and "dashboard" in r.getMessage() for r in caplog.records)
