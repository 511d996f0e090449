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

from pipeline.index_job import IndexConfig, run_index
from reliability_corpus import build_corpus
from test_index_job import assert_exactly_once, make_clip, store_rows

pytestmark = [pytest.mark.reliability, pytest.mark.ray]
ROOT = Path(__file__).resolve().parents[1]
TALLY = {"inputs": 0, "faults": 0, "lost": 0, "duplicates": 0}


def summary_line() -> str:
    """Printed at the end of the session by conftest's ``pytest_terminal_summary``."""
    return (f"reliability: inputs tried {TALLY['inputs']}, faults injected {TALLY['faults']}, "
            f"rows lost {TALLY['lost']}, duplicates {TALLY['duplicates']}")


def count_damage(uri: str, good: dict[str, int]) -> None:
    """Add lost rows (good videos missing or short) and duplicate rows (repeated keys) to the tally."""
    videos, per_video, total = store_rows(uri)
    TALLY["duplicates"] += total - sum(per_video.values())
    by_path = {Path(r["path"]).name: r for r in videos.values()}
    for name, n_frames in good.items():
        r = by_path.get(name)
        have = per_video.get(r["video_id"], 0) if r and r["status"] == "ok" else 0
        TALLY["lost"] += max(0, n_frames - have)


def test_bad_input_corpus(tmp_path):
    lib = tmp_path / "corpus"
    expect = build_corpus(lib)
    TALLY["inputs"] += len(expect) + 1  # + the symlink loop
    uri = str(tmp_path / "c.db")
    t = time.monotonic()
    summary = run_index(IndexConfig(source=str(lib), store=uri, progress=False, num_cpus=2))
    assert time.monotonic() - t < 300, "the symlink loop or a bad file made the job crawl"
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
    count_damage(uri, {n: r["n_frames"] for n, r in by_name.items() if r["status"] == "ok"})


def _index_subprocess(lib: Path, uri: str) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "index", str(lib), "--store", uri, "--json",
                             "--chunk-frames", "4"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _descends_from(pid: int, root: int) -> bool:
    """Whether ``pid`` is ``root`` or one of its descendants (a local Ray's workers are the driver's)."""
    while pid > 1:
        if pid == root:
            return True
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
    return False


def _kill_actor_once(marker: str, proc: subprocess.Popen, delay: float) -> threading.Thread:
    """SIGKILL the job's first process whose command line names ``marker`` (a Ray actor), ``delay`` s after
    it appears. Only processes of this job's own Ray are considered, never another job's on the machine."""
    def run():
        seen = None
        while proc.poll() is None:
            out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
            pids = [int(line.split()[0]) for line in out.splitlines()[1:]
                    if marker in line and _descends_from(int(line.split()[0]), proc.pid)]
            if pids:
                seen = seen or time.monotonic()
                if time.monotonic() - seen >= delay:
                    os.kill(pids[0], signal.SIGKILL)
                    TALLY["faults"] += 1
                    t.killed = True
                    return
            time.sleep(0.2)

    t = threading.Thread(target=run, daemon=True)
    t.killed = False
    t.start()
    return t


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["decode_batch", "EncodeStage", "WriteStage"])  # decode: a task worker
def test_stage_worker_sigkill_mid_job(stage, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(8):
        make_clip(lib / f"c{i}.mp4", 6)
    TALLY["inputs"] += 8
    uri = str(tmp_path / "k.db")
    proc = _index_subprocess(lib, uri)
    killer = _kill_actor_once(f"MapBatches({stage})", proc, delay=4.0)
    out, err = proc.communicate(timeout=400)
    killer.join(timeout=1)
    assert killer.killed, f"no {stage} worker of this job was found to kill"
    assert proc.returncode == 0, f"job did not finish cleanly after killing {stage}: {err[-1500:]}"
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["indexed"] + summary["incomplete"] == 8 and summary["failed"] == 0, summary
    if stage != "WriteStage":
        assert summary["incomplete"] == 0  # decode tasks are retried; the encode actor restarts and retries
    assert_exactly_once(uri, after_crash=True)
    rerun = _index_subprocess(lib, uri)
    out, err = rerun.communicate(timeout=400)
    assert rerun.returncode == 0, err[-1500:]
    videos = assert_exactly_once(uri)
    assert len(videos) == 8 and all(r["status"] == "ok" and r["n_frames"] == 6 for r in videos.values())
    count_damage(uri, {f"c{i}.mp4": 6 for i in range(8)})
