"""Slow index-job tests: the driver SIGKILLed at several points then re-run, and a real two-node cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from own_processes import pids_mentioning, stop_pids
from test_index_job import assert_exactly_once, make_clip

from vidseek.pipeline.placement import nodes_by_stage, read_placement

pytestmark = [pytest.mark.slow, pytest.mark.ray]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def six_clips(tmp_path) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(6):
        make_clip(lib / f"clip{i}.mp4", 2 + i % 3)
    (lib / "bad.mp4").write_bytes(b"\x00" * 100)
    return lib


def index_cli(lib: Path, uri: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("VIDSEEK_FAULT", None)
    if fault:
        env["VIDSEEK_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "vidseek", "index", str(lib), "--store", uri, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_driver_killed_at_several_points_then_rerun(six_clips, tmp_path):
    uri = str(tmp_path / "k.db")
    # before the first flush, between frame rows and video rows, after the first video rows (how many
    # videos one writer call finishes depends on Ray Data's batching, so "after" may be near the end)
    for fault in ("before_frames:1", "after_frames:1", "after_videos:1"):
        proc = index_cli(six_clips, uri, fault)
        assert proc.returncode == -9, f"{fault}: job was not killed: {proc.returncode} {proc.stderr[-2000:]}"
        videos = assert_exactly_once(uri, after_crash=True)  # finished videos are whole, never half
        if fault.startswith("after_videos"):
            assert len(videos) >= 1  # the kill came after durable video rows
        else:
            assert len(videos) < 7
    proc = index_cli(six_clips, uri)
    assert proc.returncode == 0, proc.stderr[-2000:]
    videos = assert_exactly_once(uri)
    assert len(videos) == 7
    assert sum(r["status"] == "failed" for r in videos.values()) == 1  # the error record, not duplicated
    again = index_cli(six_clips, uri)
    assert '"indexed": 0' in again.stdout and '"skipped": 7' in again.stdout


@pytest.fixture
def two_node_cluster(request, tmp_path, monkeypatch):
    """A head and a worker node, one CPU each; ``worker_gpus`` (indirect parameter) GPUs declared on the
    worker only (Ray's logical GPUs: torch sees none, so its CLIP actor encodes on the CPU)."""
    import socket

    worker_gpus = getattr(request, "param", {}).get("worker_gpus", 0)
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    with socket.socket() as sock:  # a free port, so a leftover cluster cannot answer in our place
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    # one auth mode for head, worker and this driver (Ray 2.60 may default to token auth)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    # each stage process writes the node it ran on here (pipeline/placement.py); workers inherit it from ray start
    (tmp_path / "placement").mkdir()
    env = dict(os.environ, VIDSEEK_PLACEMENT_DIR=str(tmp_path / "placement"))
    # this cluster's own temp dir (short: Ray's socket paths must fit 107 bytes): how its processes are
    # found and stopped afterwards, without touching any other Ray on the machine
    temp_dir = tempfile.mkdtemp(prefix="vs-ray-")
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats", "--temp-dir", temp_dir]
    subprocess.run(
        [
            ray,
            "start",
            "--head",
            "--port",
            port,
            "--include-dashboard=false",
            "--resources",
            '{"head_node": 1}',
            "--num-gpus",
            "0",
            *common,
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    try:
        for attempt in range(3):  # the head may need a moment before it accepts nodes on a busy machine
            r = subprocess.run(
                [ray, "start", "--address", f"127.0.0.1:{port}", "--resources", '{"worker_node": 1}']
                + ["--num-gpus", str(worker_gpus), *common],
                env=env,
                capture_output=True,
                text=True,
            )
            if r.returncode == 0:
                break
            time.sleep(5)
        assert r.returncode == 0, f"worker node did not start: {r.stdout[-1500:]} {r.stderr[-1500:]}"
        yield f"127.0.0.1:{port}"
    finally:
        stop_pids(pids_mentioning(temp_dir))
        shutil.rmtree(temp_dir, ignore_errors=True)


def index_on_cluster(lib: Path, uri: str, address: str, placement: Path) -> dict:
    """The job as a user runs it, `vidseek index --address`, in its own process: a Ray driver that loses its
    cluster may end its process from C++ (no Python exit, no output), which must not be pytest's.
    ``placement``: where the driver records the stages it runs itself (the write stage, for Milvus Lite)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", VIDSEEK_PLACEMENT_DIR=str(placement))
    proc = subprocess.run(
        [sys.executable, "-m", "vidseek", "index", str(lib), "--store", uri, "--address", address, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_two_node_cluster_uses_both_nodes(two_node_cluster, six_clips, tmp_path):
    uri = str(tmp_path / "c.db")
    summary = index_on_cluster(six_clips, uri, two_node_cluster, tmp_path / "placement")
    assert (summary["indexed"], summary["failed"]) == (6, 1)
    placement = nodes_by_stage(read_placement(tmp_path / "placement"))
    assert {"decode", "encode", "write"} <= set(placement), placement
    assert len(placement["write"]) == 1  # Milvus Lite: the driver writes, on the head node
    assert not any(r["actor"] for r in read_placement(tmp_path / "placement") if r["stage"] == "write")
    assert len(set().union(*placement.values())) == 2, placement  # stages ran on both nodes
    assert_exactly_once(uri)


@pytest.mark.parametrize("two_node_cluster", [{"worker_gpus": 1}], indirect=True)
def test_gpu_plan_with_gpus_on_the_worker_only(two_node_cluster, six_clips, tmp_path):
    """The GPU plan on a cluster whose only GPU is on the worker: the one CLIP actor is placed there and
    given that GPU; the decoders run on the CPU-only head and are given none."""
    uri = str(tmp_path / "g.db")
    summary = index_on_cluster(six_clips, uri, two_node_cluster, tmp_path / "placement")
    assert (summary["indexed"], summary["failed"]) == (6, 1)
    records = read_placement(tmp_path / "placement")
    encoders = [r for r in records if r["stage"] == "encode"]
    assert len(encoders) == 1 and encoders[0]["node_gpus"] == 1 and encoders[0]["cuda_visible_devices"] == "0"
    assert encoders[0]["batch_size"] == 512  # the GPU plan's batch, not the CPU plan's 64
    decoders = [r for r in records if r["stage"] == "decode"]
    assert decoders and all(r["node_gpus"] == 0 and r["cuda_visible_devices"] in (None, "") for r in decoders)
    assert_exactly_once(uri)


@pytest.mark.server
def test_two_node_cluster_writes_into_a_milvus_server(two_node_cluster, six_clips, tmp_path, milvus):
    """With a server store the writer is a Ray actor, placed wherever Ray puts it (not pinned to the driver's
    node as a Lite directory must be), and the store ends with every video exactly once."""
    summary = index_on_cluster(six_clips, milvus, two_node_cluster, tmp_path / "placement")
    assert (summary["indexed"], summary["failed"]) == (6, 1)
    records = read_placement(tmp_path / "placement")
    (writer,) = [r for r in records if r["stage"] == "write"]  # one writer actor for the job
    assert writer["actor"]  # a Ray actor, not the driver writing in-process (which Lite needs)
    assert len(set().union(*nodes_by_stage(records).values())) == 2, records  # stages ran on both nodes
    assert_exactly_once(milvus)
