"""Reliability suite: a generated bad-input corpus through a real index job, and workers SIGKILLed mid-job.

Prints one summary line at the end: inputs tried, faults injected, rows lost, duplicates.
Policy under test (README "Failure policy"): a killed decode or CLIP actor is restarted by Ray Data and its
task retried, rows repeated by the retry are de-duplicated by key; a killed writer loses the videos it was
assembling, which the job reports as incomplete and the next run indexes. Either way a re-run leaves every
good video exactly once and no half-written video.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from milvus_server import MilvusServer
from own_processes import descends_from
from reliability_corpus import build_corpus, expected_rows
from test_index_job import assert_exactly_once, make_clip, store_rows

from vidseek.pipeline.index_job import IndexConfig, run_index

pytestmark = [pytest.mark.reliability, pytest.mark.ray]
ROOT = Path(__file__).resolve().parents[1]
TALLY = {"inputs": 0, "faults": 0, "expected": 0, "lost": 0, "damaged": 0, "duplicates": 0, "audits": 0}


def summary_line(tally: dict | None = None) -> str:
    """Printed at the end of the session by conftest's ``pytest_terminal_summary``, whatever failed.
    ``tally``: this process's ``TALLY`` unless given (under pytest-xdist: the one its worker sent back).

    Every figure is counted against the inputs (``expected_rows``: ffprobe and the sampling plan), never
    against the store being audited; each audit asserts its own ``lost`` and ``duplicates`` are 0 after
    adding them here, so a failing run prints the real numbers."""
    t = tally or TALLY
    return (
        f"reliability: inputs tried {t['inputs']}, faults injected {t['faults']}, "
        f"{t['audits']} store audits of {t['expected']} expected frame rows: "
        f"rows lost {t['lost']}, duplicates {t['duplicates']} "
        f"(+ {t['damaged']} frames of damaged files lost to bad packets, reported by the decoder)"
    )


def count_damage(uri: str, expected: dict[str, int]) -> tuple[int, int]:
    """Audit a store against the inputs' expected rows; adds to the tally and returns (lost, duplicates).

    lost: expected rows missing from the store that the video's record does not report as lost to bad
    packets (a missing or failed video loses all its rows); duplicates: rows beyond one per key."""
    videos, per_video, total = store_rows(uri)
    dup = total - sum(per_video.values())
    by_name = {Path(r["path"]).name: r for r in videos.values()}
    lost = damaged = 0
    off = []  # (name, expected, in store, reported lost) of every file that does not add up
    for name, n_rows in expected.items():
        r = by_name.get(name)
        ok = r is not None and r["status"] == "ok"
        have = per_video.get(r["video_id"], 0) if ok else 0
        reported = min(int(r.get("lost") or 0), n_rows - have) if ok else 0
        damaged += max(0, reported)
        lost += max(0, n_rows - have - max(0, reported))
        dup += max(0, have - n_rows)  # more rows than the input holds: a frame written twice under two keys
        if have + max(0, reported) != n_rows:
            off.append((name, n_rows, have, reported))
    TALLY.setdefault("off", []).extend(off)
    TALLY["audits"] += 1
    TALLY["expected"] += sum(expected.values())
    TALLY["lost"] += lost
    TALLY["damaged"] += damaged
    TALLY["duplicates"] += dup
    return lost, dup


def test_bad_input_corpus(tmp_path):
    lib = tmp_path / "corpus"
    expect = build_corpus(lib)
    TALLY["inputs"] += len(expect) + 1  # + the symlink loop
    uri = str(tmp_path / "c.db")
    t = time.monotonic()
    summary = run_index(IndexConfig(source=str(lib), store=uri, progress=False, num_cpus=2))
    elapsed = time.monotonic() - t
    rows = {name: expected_rows(lib / name) for name, status in expect.items() if status == "ok"}
    assert count_damage(uri, rows) == (0, 0), (summary_line(), TALLY["off"])
    assert elapsed < 300, "the symlink loop or a bad file made the job crawl"
    n_ok = sum(v == "ok" for v in expect.values())
    assert (summary.indexed, summary.failed) == (n_ok, len(expect) - n_ok), summary.render()
    videos = assert_exactly_once(uri)
    by_name = {Path(r["path"]).name: r for r in videos.values()}
    assert set(by_name) == set(expect)
    for name, want in expect.items():
        r = by_name[name]
        assert r["status"] == want, f"{name}: {r['status']} ({r['error']})"
        if want == "failed":
            assert name in r["error"] and r["stage"] == "decode", r["error"]  # names the file and why
    errors = {Path(e["path"]).name for e in summary.errors}
    assert errors == {n for n, v in expect.items() if v == "failed"}
    again = run_index(IndexConfig(source=str(lib), store=uri, progress=False, num_cpus=2))
    assert (again.indexed, again.failed, again.skipped) == (0, 0, len(expect))  # error records not repeated


def _index_subprocess(lib: Path, uri: str) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.Popen(
        [sys.executable, "-m", "vidseek", "index", str(lib), "--store", uri, "--json", "--chunk-frames", "4"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_stage_once(stage: str, proc: subprocess.Popen) -> threading.Thread:
    """SIGKILL one worker of ``stage`` while it is mid-job, triggered by the job's progress, not by a timer.

    Each poll freezes the job's whole process tree (SIGSTOP: the job cannot finish between looking and
    killing), looks for the stage's worker in the frozen tree, kills it, and thaws the rest. A decode task
    worker qualifies while it runs a task (``ray::MapBatches(decode_batch)``); an actor once it is past
    ``__init__`` and a decode task has run (data is flowing). Only this job's processes are considered.
    """
    decode_title = "ray::MapBatches(decode_batch)"
    actor_title = f"ray::MapWorker(MapBatches({stage}))"

    def job_tree() -> list[int]:
        return [int(p) for p in os.listdir("/proc") if p.isdigit() and descends_from(int(p), proc.pid)]

    def run():
        data_flowing = False
        while proc.poll() is None:
            tree = job_tree()
            try:
                for pid in tree:
                    _signal(pid, signal.SIGSTOP)  # a process that exited meanwhile is simply skipped
                titles = {pid: _cmdline(pid) for pid in tree}
                data_flowing = data_flowing or decode_title in titles.values()
                want = decode_title if stage == "decode_batch" else actor_title if data_flowing else None
                victims = [pid for pid, title in titles.items() if title == want]
                if victims:
                    os.kill(victims[0], signal.SIGKILL)
                    TALLY["faults"] += 1
                    t.killed = titles[victims[0]]
                    return
            finally:
                for pid in tree:
                    _signal(pid, signal.SIGCONT)  # whatever happened above: never leave the job frozen
            time.sleep(0.05)

    t = threading.Thread(target=run, daemon=True)
    t.killed = None
    t.start()
    return t


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@pytest.fixture
def store_for(tmp_path, request):
    """Milvus Lite, except for the writer's case: a writer actor exists only for a server store (a Lite
    store is written by the driver, whose kill the driver tests cover)."""
    if request.node.callspec.params["stage"] != "WriteStage":
        yield str(tmp_path / "k.db")
        return
    why = MilvusServer.unavailable()
    if why:
        pytest.skip(f"no Milvus server here: {why}")
    (tmp_path / "milvus").mkdir()
    server = MilvusServer(tmp_path / "milvus")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize(
    "stage", ["decode_batch", "EncodeStage", pytest.param("WriteStage", marks=pytest.mark.server)]
)  # decode: a task worker
def test_stage_worker_sigkill_mid_job(stage, tmp_path, store_for):
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(8):
        make_clip(lib / f"c{i}.mp4", 6)
    TALLY["inputs"] += 8
    uri = store_for
    proc = _index_subprocess(lib, uri)
    killer = _kill_stage_once(stage, proc)
    out, err = proc.communicate(timeout=400)
    killer.join(timeout=1)
    expected = {f"c{i}.mp4": expected_rows(lib / f"c{i}.mp4") for i in range(8)}  # 6 s at fps:1: 6 each
    assert killer.killed, f"no {stage} worker of this job was found to kill before the job ended"
    assert proc.returncode == 0, f"job did not finish cleanly after killing {stage}: {err[-1500:]}"
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["indexed"] + summary["incomplete"] == 8 and summary["failed"] == 0, summary
    if stage != "WriteStage":
        assert summary["incomplete"] == 0  # decode tasks are retried; the encode actor restarts and retries
    assert_exactly_once(uri, after_crash=True)
    rerun = _index_subprocess(lib, uri)
    out, err = rerun.communicate(timeout=400)
    assert rerun.returncode == 0, err[-1500:]
    assert count_damage(uri, expected) == (0, 0), (summary_line(), TALLY["off"])
    videos = assert_exactly_once(uri)
    assert len(videos) == 8 and all(r["status"] == "ok" and r["n_frames"] == 6 for r in videos.values())
