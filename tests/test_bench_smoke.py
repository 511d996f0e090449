"""Every bench script runs at tiny size and prints parseable figures (no timing thresholds: not a test of speed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]
ROOT = Path(__file__).resolve().parents[1]


def _untracked() -> set[str] | None:
    proc = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True
    )
    return {line[3:] for line in proc.stdout.splitlines() if line.startswith("??")} if proc.returncode == 0 else None


@pytest.fixture(autouse=True)
def leaves_nothing_behind():
    """A bench that leaves a file in the checkout is a bug: its outputs go to a temp dir or an ignored path."""
    before = _untracked()
    yield
    if before is not None:
        assert _untracked() - before == set(), "a bench left files in the checkout"


def run_bench(tmp_path, *args: str) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", VIDSEEK_BENCH_MEDIA=str(tmp_path / "media"))
    proc = subprocess.run(
        [sys.executable, *args, "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_pipeline_efficiency_smoke(tmp_path):
    out = run_bench(tmp_path, "bench/pipeline_efficiency.py", "--smoke")
    assert out["frames"] == 8 and out["videos"] == 2  # 2 clips × 4 s at fps:1
    for key in (
        "decode_only_fps",
        "encode_only_fps",
        "vidseek_wall_fps",
        "peer_sequential_fps",
        "peer_decode_all_fps",
        "peak_rss_gb_all_processes",
    ):
        assert out[key] > 0, key
    assert 0 < out["efficiency_wall"]
    assert "efficiency_steady" in out  # NaN here: 2 short videos leave no second half to time
    # where the cores went, by process role (from /proc): the decoders and the CLIP actor must be in it
    cpu = out["vidseek_cpu_s_by_role"]
    assert cpu["stage decode_batch"] > 0 and "stage EncodeStage" in cpu, cpu
    assert out["half_library_wall_s"] > 0 and "efficiency_marginal" in out  # --smoke runs the half-library job


def test_gpu_check_runs_to_its_end_on_the_cpu(tmp_path):
    """bench/gpu_check.sh --smoke: the prepared GPU check (install step, gpu tests, benchmark, one JSON) works
    before a GPU machine is ever available. Here the gpu tests are collected and skip; none may pass."""
    out = tmp_path / "gpu_check.json"  # the default place, $OUT/gpu_check.json, as on the device machine
    env = dict(os.environ, VIDSEEK_BENCH_MEDIA=str(tmp_path / "media"), PYTHON=sys.executable, OUT=str(tmp_path))
    proc = subprocess.run(
        ["bash", "bench/gpu_check.sh", "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["card"] == "cpu" and result["smoke"] is True
    tests = result["gpu_tests"]
    assert tests["tests"] >= 3 and tests["skipped"] == tests["tests"] and tests["failures"] == tests["errors"] == 0
    bench = result["bench"]
    assert bench["device"] == "cpu" and bench["encode_only_img_s"] > 0
    assert bench["fps1_vidseek_video_s_per_s_wall"] > 0 and bench["keyframes_vidseek_video_s_per_s_wall"] > 0
    assert bench["keyframes_vs_fps1_wall"] > 0


def test_search_latency_smoke(tmp_path):
    out = run_bench(
        tmp_path,
        "bench/search_latency.py",
        "--videos",
        "60",
        "--frames",
        "4",
        "--queries",
        "3",
        "--model",
        "tiny-random",
    )
    assert out["frame_vectors"] == 240
    assert set(out["configs"]) == {
        f"{c} [{m}]"
        for c in ("mean, no rerank", "query-weighted + rerank@100", "max + rerank@100")
        for m in ("Lite, cold", "Lite, warm", "in-memory")
    } | {  # the fast path beside the row path it replaced, and beside the frame mirror
        f"{c} [Lite, {p} path, cold]"
        for c in ("mean, no rerank", "query-weighted + rerank@100")
        for p in ("fast", "row", "mirror")
    } | {"mirror sync [Lite]"}
    assert out["replica_load_s"] >= 0
    assert out["configs"].pop("mirror sync [Lite]")["rows"] == 240
    assert all(r["p50_ms"] > 0 for r in out["configs"].values())
    assert all(r["no_text_p50_ms"] > 0 for k, r in out["configs"].items() if "Lite" in k and "path" not in k)


def test_bounded_memory_smoke(tmp_path):
    out = run_bench(tmp_path, "bench/bounded_memory.py", "--hour-s", "12", "--clips", "4", "--clip-s", "2")
    assert out["long_video"]["videos"] == 1 and out["long_video"]["frames"] == 12  # fps:1 over 12 s
    assert out["clip_library"]["videos"] == 4 and out["clip_library"]["failed"] == 0
    for lib in ("long_video", "clip_library"):
        # PSS splits shared pages between processes, so its sum can never exceed the RSS sum
        assert 0 < out[lib]["peak_pss_gb"] <= out[lib]["peak_rss_gb"], out[lib]


@pytest.mark.s3
def test_remote_throughput_smoke(tmp_path):
    """bench/remote_throughput.py: local files and an S3 endpoint (moto) indexed in one run, with the bytes read."""
    out = run_bench(tmp_path, "bench/remote_throughput.py", "--videos", "2", "--seconds", "3", "--rounds", "1")
    assert out["videos"] == 2 and len(out["runs"]) == 3  # one round: local, local-pyav, s3
    for name in ("local", "local-pyav", "s3"):
        src = out["sources"][name]
        assert src["indexed"] == 2 and src["failed"] == 0, (name, src)
        for key in ("videos_per_s", "video_s_per_s", "stream_videos_per_s", "stream_video_s_per_s"):
            assert src[key] > 0, (name, key)
    assert out["sources"]["s3"]["decoders"] == {"pyav": 2}  # a URL is decoded by PyAV only
    assert out["sources"]["local-pyav"]["decoders"] == {"pyav": 2}
    assert out["s3_vs_local"]["wall"] > 0 and out["s3_vs_local_pyav"]["stream"] > 0
    b = out["s3_bytes"]
    # fps:1 demuxes every packet: the S3 run read at least the objects' bytes, the local runs none of them
    assert b["object_bytes"] > 0 and b["read_bytes_per_run"] >= b["object_bytes"] and b["object_gets_per_run"] >= 2
    assert b["local_runs_object_gets"] == 0
