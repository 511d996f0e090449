"""The same store code on a real Milvus 2.3.5 server (tests/milvus_server.py starts one for this module).

Loopback only (checked against every other address of the machine), the store's operations with 2.3's
limits, and a real index job writing into the server followed by a search and a resume.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from vidseek.operators.frame_table import FrameTable
from vidseek.store.video_store import StoreError, VideoStore

pytestmark = [pytest.mark.server, pytest.mark.slow]
MILVUS_PORTS = (19530, 19529, 19531, 9091, 2379, 2380, 53100, 21121, 21123, 21124, 13333, 22930)


def _other_addresses() -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines() if " lo " not in line]


def test_the_server_answers_on_loopback_only(milvus):
    port = int(milvus.rsplit(":", 1)[1])
    with VideoStore(milvus, prefix="probe") as store:
        assert store.caps.version.startswith("v2.3") and not store.caps.group_by
    addresses = _other_addresses()
    assert addresses, "this machine has no other address to check"
    for addr in addresses:
        for p in (*MILVUS_PORTS, port):
            with socket.socket() as s:
                s.settimeout(1)
                assert s.connect_ex((addr, p)) != 0, f"{addr}:{p} answers: Milvus is reachable from outside"


def test_columnar_reads_are_the_row_path_bit_for_bit(milvus):
    from test_columns import assert_columns_match_rows, fill

    with VideoStore(milvus, prefix="columns") as store:
        store.ensure_model({"model": "t", "embed_dim": 16, "weights": "w"})
        assert_columns_match_rows(store, fill(store))


def test_fast_and_row_search_paths_agree(milvus, tiny_clip):
    from test_search_paths import assert_paths_agree, fill_random

    with VideoStore(milvus, prefix="paths") as store:
        store.ensure_model(tiny_clip.stamp())
        fill_random(store)
        assert_paths_agree(store, tiny_clip)


def test_frame_mirror_is_the_server_store_and_searches_the_same(milvus, tiny_clip, tmp_path):
    from test_frame_mirror import assert_mirror_is_the_store, assert_same_hits
    from test_search_paths import fill_random

    from vidseek.retrieval.frame_mirror import FrameMirror

    with VideoStore(milvus, prefix="mirror") as store:
        store.ensure_model(tiny_clip.stamp())
        fill_random(store)
        mirror = FrameMirror(tmp_path / "mirror", store, batch_videos=16)
        assert mirror.sync().added == 59
        assert_mirror_is_the_store(store, mirror)
        assert_same_hits(store, tiny_clip, mirror)


def test_store_operations_with_2_3_limits(milvus):
    rng = np.random.default_rng(0)
    with VideoStore(milvus, prefix="ops") as store:
        store.ensure_model({"model": "t", "embed_dim": 8, "weights": "w"})
        assert not store.has_learned  # 2.3: one vector field per collection
        ids = [f"v{i}" for i in range(6)]
        for vid in ids:
            n = np.arange(5)
            store.insert_frames(vid, FrameTable.of(n, n * 1.0, n * 1.0, n + 1.0, rng.normal(size=(5, 8))))
        store.upsert_videos(
            [{"video_id": v, "path": f"/{v}.mp4", "mean_vec": rng.normal(size=8), "n_frames": 5} for v in ids]
        )
        q = rng.normal(size=(2, 8)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        grouped = store.search_frames_grouped(q, 4)  # visible at once (Strong consistency), grouped here
        assert [len({h["video_id"] for h in g}) for g in grouped] == [4, 4]
        assert [len(g) for g in grouped] == [4, 4]
        assert len(store.search_videos(q, 3)[0]) == 3
        assert sorted(store.get_videos(ids[:2])) == ids[:2]
        assert len(store.frames_of(ids)["v3"].vectors) == 5
        store.delete_videos(ids[:3])  # a delete is visible before the next read
        assert store.count_frames() == 15 and len(store.video_records()) == 3


def _clip(path: Path, seconds: int) -> None:
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=duration={seconds}:size=96x72:rate=10",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
    )


def test_index_job_search_and_resume_on_a_real_server(milvus, tmp_path, tiny_clip):
    from vidseek.pipeline.index_job import IndexConfig, JobError, run_index
    from vidseek.retrieval.search import Searcher

    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(4):
        _clip(lib / f"c{i}.mp4", 2 + i)
    (lib / "broken.mp4").write_bytes(b"\0" * 64)
    cfg = IndexConfig(source=str(lib), store=milvus, prefix="job", progress=False, num_cpus=2)
    summary = run_index(cfg)
    assert (summary.indexed, summary.failed) == (4, 1), summary.render()
    again = run_index(cfg)
    assert (again.indexed, again.skipped) == (0, 5)  # resume: everything is already there
    searcher = Searcher(VideoStore(milvus, prefix="job"), clip=tiny_clip)
    hits = searcher.search("a test pattern", k=3)
    assert len(hits) == 3 and len({h.video_id for h in hits}) == 3
    assert all(h.path.endswith(".mp4") and h.moment[1] > h.moment[0] for h in hits)
    head = Path(__file__).resolve().parents[1] / "operators" / "weights" / "testbed_head.pt"
    with pytest.raises(JobError, match="one vector field per collection"):
        run_index(
            IndexConfig(
                source=str(lib),
                store=milvus,
                prefix="jobhead",
                progress=False,
                head=str(head),
                model="testbed",
            )
        )


def test_serve_and_a_separate_index_process_share_one_server(milvus, tmp_path, tiny_clip):
    """The README's promise for a server store: `vidseek serve` answers searches while a separate
    `vidseek index` process writes into the same store, and then finds what it wrote — two real processes."""
    import json as _json
    import os
    import sys
    import urllib.request

    from service_lib import free_port

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(3):
        _clip(lib / f"s{i}.mp4", 3)
    with VideoStore(milvus) as store:  # the store has its model (the default one)
        store.ensure_model(tiny_clip.stamp())  # before the service opens it, and no video yet
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "vidseek", "serve", "--store", milvus, "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def search() -> list[str]:
        url = f"http://127.0.0.1:{port}/search?q=a+test+pattern&k=10"
        with urllib.request.urlopen(url, timeout=30) as r:
            return [h["path"] for h in _json.loads(r.read())["hits"]]

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                before = search()
                break
            except OSError:
                assert serve.poll() is None and time.monotonic() < deadline, "the service did not come up"
                time.sleep(1)
        assert before == []
        index = subprocess.Popen(
            [sys.executable, "-m", "vidseek", "index", str(lib), "--store", milvus, "--json"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        answered = 0
        while index.poll() is None:  # the service keeps answering while the other process writes
            search()
            answered += 1
            time.sleep(0.5)
        out, err = index.communicate()
        assert index.returncode == 0, err[-2000:]
        assert '"indexed": 3' in out, out
        assert answered >= 1
        # and sees what it wrote: searches read with Session consistency, so another process's writes show
        # within the server's time tick (store/video_store.py SEARCH_CONSISTENCY); allow a few seconds
        want = sorted(str(lib / f"s{i}.mp4") for i in range(3))
        deadline = time.monotonic() + 10
        while sorted(search()) != want and time.monotonic() < deadline:
            time.sleep(0.5)
        assert sorted(search()) == want
    finally:
        serve.terminate()
        serve.wait(timeout=30)


# DISKANN is left out: the 2.3.5 wheel ships with queryNode.enableDisk false and never builds it (docs/scale.md)
COMPRESSED = ("IVF_SQ8", "IVF_PQ")


def test_compressed_frame_indexes_are_built_searched_and_thinned(milvus, tiny_clip):
    """A large library's frame index (docs/scale.md): built by the server on a sealed segment, searched with
    its own parameters, and thinned in place like any store. Both stores are written first, so the server
    builds their indexes at the same time."""
    from vidseek.store.thin import thin_store

    rng = np.random.default_rng(0)
    dim = tiny_clip.embed_dim
    stamp = tiny_clip.stamp()
    target = rng.normal(size=dim).astype(np.float32)
    ids = [f"v{i:03d}" for i in range(100)]
    stores = {ix: VideoStore(milvus, prefix=f"idx_{ix.lower()}", frame_index=ix) for ix in COMPRESSED}
    try:
        for store in stores.values():
            store.ensure_model(stamp)
            for vid in ids:  # 30 frames each, in runs of 3 exact duplicates: 3,000 rows
                f = np.repeat(rng.normal(size=(10, dim)), 3, axis=0).astype(np.float32)
                if vid == "v042":
                    f[12:15] = target
                n = np.arange(30)
                store.insert_frames(vid, FrameTable.of(n, n + 0.5, n * 1.0, n + 1.0, f))
            store.upsert_videos([{"video_id": v, "path": f"/{v}.mp4", "mean_vec": rng.normal(size=dim)} for v in ids])
            store.client.flush(store.frames)
        deadline = time.monotonic() + 120
        for ix, store in stores.items():
            while True:  # the server builds the index on the sealed segment
                info = store.client.describe_index(store.frames, "vec")
                if info["indexed_rows"] == 3000 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert info["index_type"] == ix and info["indexed_rows"] == 3000, info
        q = (target / np.linalg.norm(target))[None]
        for store in stores.values():
            assert store.frame_grouping == "client"  # 2.3 groups nothing, whatever the index
            assert store.search_frames_grouped(q, 5)[0][0]["video_id"] == "v042"
            report = thin_store(store, 1.0)
            assert (report.rows_before, report.rows_after) == (3000, 1000)
            assert store.search_frames_grouped(q, 5)[0][0]["video_id"] == "v042"
    finally:
        for store in stores.values():
            store.close()
    for ix in COMPRESSED:
        with VideoStore(milvus, prefix=f"idx_{ix.lower()}") as store:  # the index type is the store's, read back
            assert store.frame_index.index_type == ix
        with pytest.raises(StoreError, match=f"indexes its frames with {ix}, not HNSW"):
            with VideoStore(milvus, prefix=f"idx_{ix.lower()}", frame_index="HNSW") as store:
                store.ensure_model(stamp)
