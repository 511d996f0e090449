"""Copies on Ray (pipeline/copies_job.py): probe and align tasks over a Milvus 2.3.5 server store give exactly
the records ``find_copies`` gives in one process, in the same order; `vidseek copies --ray` runs that path."""

from __future__ import annotations

import json

import pytest
from planted_copies import PARAMS, check_library_copies, plant_library
from typer.testing import CliRunner

from vidseek.apps.cli.main import app
from vidseek.pipeline.copies_job import find_copies_on_ray
from vidseek.retrieval.copies import find_copies
from vidseek.store.video_store import VideoStore

pytestmark = [pytest.mark.ray, pytest.mark.server, pytest.mark.slow]


def test_ray_tasks_give_exactly_the_local_records(milvus):
    with VideoStore(milvus) as store:
        plant_library(store)
        local = find_copies(store, params=PARAMS)
    check_library_copies(local)
    progress = []
    # small chunks: 15 videos in 4 probe tasks, the candidate pairs in several align tasks
    on_ray = find_copies_on_ray(
        milvus, PARAMS, num_cpus=2, probe_chunk=4, align_chunk=3, progress=lambda *a: progress.append(a)
    )
    assert on_ray == local
    probes = [p for p in progress if p[0] == "probe"]
    aligns = [p for p in progress if p[0] == "align"]
    assert len(probes) == 4 and probes[-1][1:] == (15, 15)  # every task reported: the work really was split
    assert len(aligns) >= 3 and aligns[-1][1] == aligns[-1][2]
    r = CliRunner().invoke(
        app,
        ["copies", "--store", milvus, "--ray", "--format", "json", "--min-seconds", "5", "--k", "12"]
        + ["--generic-videos", "6", "--whiten", "0", "--threshold", "0.93"],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == [rec.as_dict() for rec in local]
