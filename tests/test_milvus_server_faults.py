"""Faults of a real Milvus server (issue 16): kill -9 mid-index, restart on the same data directory.

The job (a `vidseek index` process, as a user runs it) either rides the outage out — the store retries with
backoff for --store-retry seconds (store/server_retry.py) — or stops with one clear line; a re-run then
leaves every input exactly once, counted against the inputs. Searches while the server is down fail with
the CLI's message and the service's 503; after a restart, everything written before the kill is there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from milvus_server import MilvusServer
from test_milvus_server import _clip

from vidseek.operators.frame_table import FrameTable
from vidseek.store.video_store import StoreUnavailableError, VideoStore

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.reliability]
ROOT = Path(__file__).resolve().parents[1]
N_CLIPS, SECONDS = 10, 20  # fps:1: 20 frame rows per clip; 200 in all span several encoder batches (64)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module; a test that kills it starts it again (same data, same URI) before it ends."""
    why = MilvusServer.unavailable()
    if why:
        pytest.skip(f"no Milvus server here: {why}")
    s = MilvusServer(tmp_path_factory.mktemp("milvus-data"))
    s.uri = s.start()
    yield s
    s.stop()


def _index(lib: Path, uri: str, *extra: str, fault: str | None = None) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("VIDSEEK_FAULT", None)
    if fault:
        env["VIDSEEK_FAULT"] = fault
    return subprocess.Popen(
        [sys.executable, "-m", "vidseek", "index", str(lib), "--store", uri, "--json", *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _videos_of(store: VideoStore, lib: Path) -> dict[str, dict]:
    """The video rows of this test's library only: the module's tests share one server and its collections."""
    rows = store.video_records(fields=["video_id", "path", "status", "n_frames"])
    return {r["video_id"]: r for r in rows if Path(r["path"]).parent == lib.resolve()}


def _ok_videos(uri: str, lib: Path) -> dict[str, int]:
    with VideoStore(uri, retry_s=30) as store:
        return {v: r["n_frames"] for v, r in _videos_of(store, lib).items() if r["status"] == "ok"}


def _first_videos(job: subprocess.Popen, uri: str, lib: Path) -> dict[str, int]:
    """The library's first finished videos, polled while the job runs (up to 300 s); {} if none came."""
    deadline = time.monotonic() + 300
    done: dict[str, int] = {}
    while not done and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.5)
        done = _ok_videos(uri, lib)
    return done


def _audit(uri: str, lib: Path) -> tuple[dict[str, dict], int, int]:
    """(video rows, frame rows, distinct frame keys) of this test's library."""
    with VideoStore(uri, retry_s=30) as store:
        videos = _videos_of(store, lib)
        frames = [
            f for f in store.iter_query(store.frames, 'video_id != ""', ["video_id", "idx"]) if f["video_id"] in videos
        ]
    return videos, len(frames), len({(f["video_id"], f["idx"]) for f in frames})


def test_kill_9_mid_index_restart_and_rerun_leave_every_video_once(server, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(N_CLIPS):
        _clip(lib / f"c{i:02d}.mp4", SECONDS)
    (lib / "broken.mp4").write_bytes(b"\0" * 64)
    # the writer holds for 15 s right after its first video rows: the kill lands mid-job, whatever the batching
    job = _index(lib, server.uri, "--store-retry", "120", fault="after_videos:1:pause=15")
    done = _first_videos(job, server.uri, lib)
    assert done, f"the job wrote no videos before the kill: {done} {job.poll()}"
    assert len(done) < N_CLIPS, "the job finished before the fault: nothing was tested"
    server.kill()  # the fault, really: the server's whole process group is gone (kill asserts it)
    time.sleep(3)
    server.start()
    out, err = job.communicate(timeout=400)
    # after the restart, everything written before the kill is there
    assert set(done) <= set(_ok_videos(server.uri, lib))
    if job.returncode == 0:  # rode it out
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["indexed"] + summary["failed"] == N_CLIPS + 1 - summary["skipped"], summary
    else:  # or stopped with one clear line naming the server
        assert "Milvus server at" in err and "Traceback" not in err, err[-3000:]
    rerun = _index(lib, server.uri)
    out, err = rerun.communicate(timeout=400)
    assert rerun.returncode == 0, err[-3000:]
    videos, frame_rows, distinct = _audit(server.uri, lib)
    ok = {v: r for v, r in videos.items() if r["status"] == "ok"}
    assert len(videos) == N_CLIPS + 1 and len(ok) == N_CLIPS, videos  # every input once: 0 lost
    assert frame_rows == distinct == N_CLIPS * SECONDS  # 0 duplicated, 0 missing, against the inputs
    assert all(r["n_frames"] == SECONDS for r in ok.values())
    print(
        f"server kill -9 mid-index: {len(done)} videos done before the kill, job "
        f"{'rode it out' if job.returncode == 0 else 'stopped with a clear message'}; after the re-run "
        f"{len(ok)}/{N_CLIPS} videos, {frame_rows} frame rows of {N_CLIPS * SECONDS} expected, duplicates 0"
    )


def test_searches_while_the_server_is_down_fail_clearly(server, tmp_path, tiny_clip):
    from fastapi.testclient import TestClient

    from vidseek.apps.service import create_app

    rng = np.random.default_rng(0)
    with VideoStore(server.uri) as store:
        store.ensure_model(tiny_clip.stamp())
        n = np.arange(3)
        store.insert_frames("down", FrameTable.of(n, n * 1.0, n * 1.0, n + 1.0, rng.normal(size=(3, 64))))
        store.upsert_videos([{"video_id": "down", "path": "/down.mp4", "mean_vec": rng.normal(size=64), "n_frames": 3}])
    with TestClient(create_app(server.uri)) as client:
        assert client.get("/search", params={"q": "a test pattern"}).status_code == 200
        server.kill()
        t = time.monotonic()
        r = client.get("/search", params={"q": "a test pattern"})
        assert r.status_code == 503 and "Milvus server at" in r.json()["detail"], r.text
        assert r.headers["Retry-After"] and time.monotonic() - t < 30  # the service's budget, not forever
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cli = subprocess.run(
        [sys.executable, "-m", "vidseek", "search", "a test pattern", "--store", server.uri],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 2 and "Milvus server at" in cli.stderr and "Traceback" not in cli.stderr, cli.stderr
    server.start()
    with VideoStore(server.uri, retry_s=60) as store:  # back: what was there before the kill is all there
        assert store.count_frames("down") == 3 and sorted(store.get_videos(["down"])) == ["down"]
    with pytest.raises(StoreUnavailableError, match="has not answered for 1 s"):
        with VideoStore(server.uri, retry_s=1) as store:
            server.kill()
            store.count_frames()
    server.start()  # the module's server is up again for whoever comes next


def test_a_server_that_stays_down_stops_the_job_with_one_clear_line(server, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(N_CLIPS):  # enough frames for several writer calls: work remains after the pause
        _clip(lib / f"d{i}.mp4", SECONDS)
    job = _index(lib, server.uri, "--store-retry", "3", fault="after_videos:1:pause=15")
    before = _first_videos(job, server.uri, lib)
    assert before, "the job wrote no video before the kill"
    assert len(before) < N_CLIPS, "the job finished before the fault: nothing was tested"
    server.kill()  # and it stays down until the job has given up
    try:
        out, err = job.communicate(timeout=300)
    finally:
        server.start()
    assert job.returncode == 2, (job.returncode, err[-3000:])
    assert "Milvus server at" in err and "has not answered for 3 s" in err and "Traceback" not in err, err[-3000:]
