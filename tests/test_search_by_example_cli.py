"""`vidseek search --image` and `--video` (apps/cli/by_example.py) over a small testbed world (tests/qbe_world.py):
the expected video ranks first for a frame taken from it, a clip finds its video with the aligned segment in both,
text + image fusion ends at text search and at image search, and every bad input is one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FFMPEG
from qbe_world import both_present, ffmpeg, fill_store, png_at, record_decode_limits
from typer.testing import CliRunner

from vidseek.apps.cli.main import app
from vidseek.apps.testbed.world import generate_world
from vidseek.store.video_store import VideoStore

EXACT = ["--aggregation", "max", "--no-rerank"]  # as tests/test_query_by_example.py ranks a frame's own clip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if FFMPEG is None:
        pytest.skip("ffmpeg binary not installed")
    d = tmp_path_factory.mktemp("qbe-cli-world")
    return d, generate_world(d, seed=5, n_content=5, n_brief=0, n_order=0)


@pytest.fixture(scope="module")
def store(world, tmp_path_factory, testbed_clip) -> str:
    uri = str(tmp_path_factory.mktemp("qbe-cli") / "s.db")
    with VideoStore(uri) as s:
        fill_store(s, world, testbed_clip)
    return uri


def vidseek(*args: str):
    r = CliRunner(env={"COLUMNS": "200"}).invoke(app, [str(a) for a in args])
    return r


def ok_json(*args: str) -> dict:
    r = vidseek("search", *args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def failed(*args: str) -> str:
    r = vidseek("search", *args)
    assert r.exit_code == 2, r.output
    assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1, r.stderr  # one line, no traceback
    return r.stderr


def test_an_image_finds_its_clip_first_and_the_moment(world, store, tmp_path):
    d, manifest = world
    for clip in manifest["clips"][:3]:
        t = both_present(clip, manifest["fps"])
        image = png_at(d / clip["video"], t, tmp_path / "shot.png")
        hits = ok_json("--store", store, "--image", image, "--k", 3, *EXACT)["hits"]
        assert hits[0]["video_id"] == clip["video"], [h["video_id"] for h in hits]
        assert hits[0]["moment"][0] - 0.5 <= t <= hits[0]["moment"][1] + 0.5
    r = vidseek("search", "--store", store, "--image", image, "--k", 3, *EXACT)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "image shot.png" and Path(clip["video"]).name in lines[1] and "moment" in lines[1]


def test_a_jpeg_and_a_webp_of_the_frame_find_it_too(world, store, tmp_path):
    d, manifest = world
    clip = manifest["clips"][1]
    t = both_present(clip, manifest["fps"])
    for suffix in ("jpg", "webp"):
        image = png_at(d / clip["video"], t, tmp_path / f"shot.{suffix}")
        assert ok_json("--store", store, "--image", image, "--k", 3, *EXACT)["hits"][0]["video_id"] == clip["video"]


def test_text_and_image_fusion_ends_at_text_search_and_image_search(world, store, tmp_path):
    d, manifest = world
    clip = manifest["clips"][1]
    image = png_at(d / clip["video"], both_present(clip, manifest["fps"]), tmp_path / "q.png")
    text = next(q["query"] for q in manifest["queries"] if q["video"] == clip["video"])

    def ids(*args):
        return [h["video_id"] for h in ok_json("--store", store, "--k", 5, *args)["hits"]]

    assert ids(text, "--image", image, "--image-weight", 0) == ids(text)
    assert ids(text, "--image", image, "--image-weight", 1) == ids("--image", image)
    fused = ok_json("--store", store, text, "--image", image)
    assert fused["hits"][0]["video_id"] == clip["video"] and fused["query"] == text and fused["image_weight"] == 0.5
    r = vidseek("search", "--store", store, text, "--image", image, "--image-weight", 0.3)
    assert r.exit_code == 0 and r.stdout.splitlines()[0] == f"image q.png + {text!r} (image weight 0.3)"


def test_a_clip_finds_its_video_with_the_aligned_segment_in_both(world, store):
    d, manifest = world
    clip = manifest["clips"][2]
    video = d / clip["video"]
    out = ok_json("--store", store, "--video", video, "--start", 3, "--end", 8, "--k", 3)
    top = out["hits"][0]
    assert top["video_id"] == clip["video"] and top["aligned"]
    assert top["segment"] == pytest.approx([3.0, 8.0], abs=0.5)  # in the stored video
    assert 3.0 <= top["query_segment"][0] < top["query_segment"][1] <= 8.0  # in the query clip
    assert (out["start"], out["end"]) == (3.0, 8.0)
    r = vidseek("search", "--store", store, "--video", video, "--start", 3, "--end", 8, "--k", 3)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == f"clip: {video.name} 3.0–8.0 s"
    (s0, s1), (q0, q1) = top["segment"], top["query_segment"]
    assert f"{video.name}  video {s0:.1f}–{s1:.1f} s ↔ clip {q0:.1f}–{q1:.1f} s" in lines[1]


def test_bad_inputs_are_one_line_each(world, store, tmp_path, testbed_clip):
    d, manifest = world
    video = d / manifest["clips"][0]["video"]
    assert "nope.png: no such file; --image takes a JPEG, PNG or WebP file" in failed(
        "--store", store, "--image", tmp_path / "nope.png"
    )
    ffmpeg("-i", str(video), "-frames:v", "1", str(tmp_path / "frame.gif"))
    assert "frame.gif: GIF image; use JPEG, PNG or WebP" in failed("--store", store, "--image", tmp_path / "frame.gif")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    err = failed("--store", store, "--image", tmp_path / "broken.jpg")
    assert "broken.jpg: not a readable image" in err and "use JPEG, PNG or WebP" in err
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 1000)
    err = failed("--store", store, "--video", tmp_path / "bad.mp4")
    assert "bad.mp4: the clip cannot be decoded" in err
    assert "--start (5 s) must be before --end (2 s)" in failed(
        "--store", store, "--video", video, "--start", 5, "--end", 2
    )
    assert "--start (5 s) must be before --end (5 s)" in failed(
        "--store", store, "--video", video, "--start", 5, "--end", 5
    )
    assert "give --image or --video, not both" in failed("--store", store, "--image", video, "--video", video)
    assert "takes no TEXT" in failed("--store", store, "a red circle", "--video", video)
    assert "give --video" in failed("--store", store, "--image", video, "--start", 1)
    assert "give a TEXT query, --image FILE or --video FILE" in failed("--store", store)
    assert "--image-weight 1.5: must be in [0, 1]" in failed(
        "--store", store, "x", "--image", video, "--image-weight", 1.5
    )
    bare = str(tmp_path / "bare.db")  # the testbed model's store, one video row, no frame vectors
    with VideoStore(bare) as s:
        s.ensure_model(testbed_clip.stamp())
        s.upsert_videos([{"video_id": "v", "path": str(video), "duration": 1.0, "n_frames": 0, "sampling": "fps:2"}])
    png = png_at(video, 1.0, tmp_path / "f.png")
    assert "holds no frame vectors" in failed("--store", bare, "--image", png)
    assert "holds no frame vectors" in failed("--store", bare, "--video", video)


def test_the_clip_is_decoded_under_the_configured_decode_timeout(world, store, monkeypatch):
    from vidseek.operators.isolated_decode import DecodeLimit

    limits = record_decode_limits(monkeypatch)
    d, manifest = world
    video = d / manifest["clips"][2]["video"]
    args = ("--store", store, "--video", video, "--start", 3, "--end", 8, "--k", 1)
    assert ok_json(*args, "--decode-timeout", 7, "--decode-timeout-per-s", 0.5)["hits"]
    assert ok_json(*args)["hits"]
    assert limits == [DecodeLimit(7.0, 0.5), DecodeLimit()]  # the configured one, else the index job's default
    assert "decode timeout must be > 0 s" in failed(*args, "--decode-timeout", 0)
