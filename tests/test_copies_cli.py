"""`vidseek copies` (apps/cli/copies.py) over the planted copy library (tests/planted_copies.py): the known pairs,
the aligned time ranges and kinds, in text, JSON, JSONL and CSV, to stdout and to --out; bad input is one line."""

from __future__ import annotations

import csv
import io
import json

import pytest
from planted_copies import PARAMS, check_library_copies, plant_library
from typer.testing import CliRunner

from vidseek.apps.cli.main import app
from vidseek.retrieval.copies import RECORD_FIELDS, CopyRecord, find_copies
from vidseek.store.video_store import VideoStore

# PARAMS as options (the planted library is 15 videos of isotropic noise: docs/copies.md's defaults are the testbed's)
OPTIONS = ["--min-seconds", "5", "--k", "12", "--generic-videos", "6", "--whiten", "0", "--threshold", "0.93"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    uri = str(tmp_path_factory.mktemp("copies-cli") / "lib.db")
    with VideoStore(uri) as s:
        plant_library(s)
    return uri


@pytest.fixture(scope="module")
def expected(store) -> list[CopyRecord]:
    with VideoStore(store) as s:
        return find_copies(s, params=PARAMS)


def vidseek(*args: str):
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, ["copies", *map(str, args)])


def test_json_is_the_library_records_and_holds_the_known_pairs(store, expected):
    r = vidseek("--store", store, *OPTIONS, "--format", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    check_library_copies([CopyRecord(**row) for row in rows])  # the copies, excerpts and their time ranges
    assert rows == [e.as_dict() for e in expected]


def test_csv_has_the_record_columns_and_the_excerpts_ranges(store, expected):
    r = vidseek("--store", store, *OPTIONS, "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == RECORD_FIELDS and len(rows) == len(expected)
    ex = next(row for row in rows if (row["a"], row["b"]) == ("excerpt", "src"))
    assert (float(ex["a_start"]), float(ex["a_end"])) == pytest.approx((8.0, 18.0), abs=0.5)  # where it was planted
    assert (float(ex["b_start"]), float(ex["b_end"])) == pytest.approx((10.0, 20.0), abs=0.5)
    assert ex["kind"] == "segment" and ex["a_path"] == "/lib/excerpt.mp4"


def test_text_lines_and_out_files(store, expected, tmp_path):
    r = vidseek("--store", store, *OPTIONS)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == f"{len(expected)} pairs among 15 videos" and len(lines) == len(expected) + 1
    top = expected[0]
    assert f"{top.kind:9s} {top.a}.mp4 {top.a_start:.1f}–{top.a_end:.1f} s ↔ {top.b}.mp4" in lines[1]
    kinds = {k: sum(e.kind == k for e in expected) for k in ("duplicate", "excerpt", "segment")}
    for name, fmt in (("c.csv", []), ("c.jsonl", []), ("c.txt", ["--format", "json"])):
        r = vidseek("--store", store, *OPTIONS, "--out", tmp_path / name, *fmt)
        assert r.exit_code == 0, r.output
        assert r.stdout.startswith(f"{len(expected)} pairs among 15 videos ({kinds['duplicate']} duplicate, ")
    with open(tmp_path / "c.csv") as f:
        assert [row["a"] for row in csv.DictReader(f)] == [e.a for e in expected]
    jsonl = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert jsonl == json.loads((tmp_path / "c.txt").read_text()) == [e.as_dict() for e in expected]


def test_bad_input_is_one_line(store, tmp_path):
    for args, says in (
        (["--threshold", "1.5"], "0 < threshold < 1"),
        (["--format", "xml"], "'xml' is not one of text, json, jsonl, csv"),
        (["--ray"], "a Milvus Lite store admits one process"),
    ):
        r = vidseek("--store", store, *args)
        assert r.exit_code == 2 and says in r.stderr, (args, r.output)
    r = vidseek("--store", tmp_path / "empty.db")
    assert r.exit_code == 2 and "is empty: run `vidseek index SOURCE" in r.stderr, r.output
