"""A local Ray start that stalls is described (what it left behind) and started again, quietly when that works."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time

import pytest

from vidseek.pipeline import job_ray
from vidseek.pipeline.index_config import IndexConfig


def test_the_report_names_a_fork_that_never_exec_d_and_the_daemons_that_wrote_a_log(tmp_path):
    logs = tmp_path / "session_latest" / "logs"
    logs.mkdir(parents=True)
    (logs / "gcs_server.out").write_text("")
    pid = os.fork()
    if pid == 0:  # the child: a copy of this process that never execs, as a fork stuck in preexec_fn is
        time.sleep(60)
        os._exit(0)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        time.sleep(0.2)
        report = job_ray.stalled_start_report(str(tmp_path))
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        sleeper.kill()
        sleeper.wait()
    assert f"{pid} a fork of this process that never exec'd" in report, report
    assert f"{sleeper.pid} sleep" in report, report
    assert report.endswith("daemon logs: gcs_server"), report


def test_a_stalled_start_is_started_again_and_logged_at_info_only(monkeypatch, caplog, tmp_path):
    import ray

    calls = []

    def init(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise Exception("Timed out waiting for file gcs_server_port")  # what Ray raises, bare

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr(job_ray.time, "sleep", lambda s: None)
    monkeypatch.setenv("VIDSEEK_RAY_TMP", str(tmp_path))
    with caplog.at_level(logging.INFO, logger=job_ray.__name__):
        job_ray.start_local_ray(IndexConfig(source="x", store="y.db"))
    assert len(calls) == 2 and calls[1]["_temp_dir"] == str(tmp_path)
    (record,) = caplog.records
    assert record.levelno == logging.INFO and "gcs_server_port" in record.getMessage()
    assert "children:" in record.getMessage()


def test_three_stalled_starts_stop_the_job_with_one_line(monkeypatch, tmp_path):
    import ray

    def init(**kwargs):
        raise Exception("The current node timed out during startup")

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr(job_ray.time, "sleep", lambda s: None)
    monkeypatch.setenv("VIDSEEK_RAY_TMP", str(tmp_path))
    with pytest.raises(job_ray.JobError, match=r"could not start a local Ray instance \(3 tries\).*re-running"):
        job_ray.start_local_ray(IndexConfig(source="x", store="y.db"))
