"""Query by example (retrieval/query_by_example.py): images through the store's preprocessing, text + image
fusion, and video-clip queries aligned against stored frame sequences.

The store holds a small testbed world (content clips, each two objects of its own) indexed directly with the
operators the index job uses (decode at fps:2, the bundled ``testbed`` model), without starting Ray.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FFMPEG

from vidseek.apps.testbed.world import generate_world
from vidseek.operators.aggregate import mean_pool
from vidseek.operators.decode import DecodeError, decode_frames
from vidseek.operators.encode import encode_images
from vidseek.operators.frame_table import FrameTable
from vidseek.retrieval.alignment import unit_rows
from vidseek.retrieval.query_by_example import (
    ClipSearchParams,
    QueryImageError,
    fuse,
    image_vectors,
    load_image,
    prepare_image,
    search_clip,
    search_image,
    store_sampling,
)
from vidseek.retrieval.search import Searcher, SearchParams
from vidseek.store.video_store import VideoStore

SAMPLING = "fps:2"


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=60)


def png_at(video: Path, t: float, out: Path) -> Path:
    """ffmpeg's frame on screen at ``t``, at the file's own resolution."""
    ffmpeg("-ss", f"{t:g}", "-i", str(video), "-frames:v", "1", str(out))
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if FFMPEG is None:
        pytest.skip("ffmpeg binary not installed")
    d = tmp_path_factory.mktemp("qbe-world")
    return d, generate_world(d, seed=5, n_content=5, n_brief=0, n_order=0)


def fill_store(store: VideoStore, world, testbed_clip) -> None:
    """The world's clips, frames decoded and encoded as the index job does."""
    torch.set_num_threads(1)
    d, manifest = world
    store.ensure_model(testbed_clip.stamp())
    rows = []
    for clip in manifest["clips"]:
        path = d / clip["video"]
        frames, t0, t1, summary = decode_frames(str(path), testbed_clip.preprocess, SAMPLING)
        vectors = encode_images(testbed_clip, frames)
        store.insert_frames(clip["video"], FrameTable.of(np.arange(len(t0)), (t0 + t1) / 2, t0, t1, vectors))
        mean = mean_pool(torch.from_numpy(vectors)[None])[0].numpy()
        rows.append(
            {
                "video_id": clip["video"],
                "path": str(path),
                "duration": summary.duration,
                "n_frames": len(t0),
                "sampling": SAMPLING,
                "mean_vec": mean,
            }
        )
    store.upsert_videos(rows)


@pytest.fixture(scope="module")
def searcher(world, tmp_path_factory, testbed_clip):
    store = VideoStore(str(tmp_path_factory.mktemp("qbe") / "s.db"))
    fill_store(store, world, testbed_clip)
    yield Searcher(store, clip=testbed_clip, warn=False)
    store.close()


def both_present(clip: dict, fps: int) -> float:
    """A time (s) in the middle of the clip's longest stretch with its two main objects on screen."""
    a, b = ({f for x, y in tr["present"] for f in range(x, y + 1)} for tr in clip["tracks"][:2])
    both = sorted(a & b)
    return (both[len(both) // 2] + 0.5) / fps


# -- the image ----------------------------------------------------------------------------------------
def test_a_frame_image_is_prepared_as_the_decoder_prepares_the_frame(world, testbed_clip, tmp_path):
    """A PNG of a frame at full resolution, through load_image + prepare_image, against the decoded sample at
    the same time: within what the codec's chroma and the two scale paths change."""
    d, manifest = world
    video = d / manifest["clips"][0]["video"]
    wide = tmp_path / "wide.mp4"  # a 4:3 source: the short side is scaled, the long one centre-cropped
    ffmpeg("-i", str(video), "-vf", "scale=160:120", "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", str(wide))
    for source in (video, wide):
        frames, t0, t1, _ = decode_frames(str(source), testbed_clip.preprocess, SAMPLING)
        k = 5
        png = png_at(source, float((t0[k] + t1[k]) / 2), tmp_path / "f.png")
        image = prepare_image(load_image(png), testbed_clip.preprocess)
        assert image.shape == frames[k].shape == (64, 64, 3)
        assert np.abs(image.astype(int) - frames[k].astype(int)).mean() < 2.0  # measured: 1.0–1.1
        vec = image_vectors(testbed_clip, [png])[0]
        assert float(vec @ unit_rows(encode_images(testbed_clip, frames[k : k + 1]))[0]) > 0.99  # measured ≥ 0.995


def test_images_of_any_size_become_the_model_input(testbed_clip):
    for h, w in ((3, 3), (30, 200), (500, 80), (64, 64)):
        assert prepare_image(np.zeros((h, w, 3), np.uint8), testbed_clip.preprocess).shape == (64, 64, 3)


def test_jpeg_png_webp_load_and_other_formats_are_refused(tmp_path):
    from PIL import Image

    rgb = (np.arange(20 * 40 * 3) % 251).astype(np.uint8).reshape(20, 40, 3)
    for fmt in ("PNG", "JPEG", "WEBP"):
        p = tmp_path / f"x.{fmt.lower()}"
        Image.fromarray(rgb).save(p, fmt)
        assert load_image(p).shape == (20, 40, 3)
        assert load_image(p.read_bytes()).shape == (20, 40, 3)  # an upload's bytes
    Image.fromarray(rgb).save(tmp_path / "x.gif", "GIF")
    with pytest.raises(QueryImageError, match="GIF image; use JPEG, PNG or WebP"):
        load_image(tmp_path / "x.gif")
    with pytest.raises(QueryImageError, match="uploaded image: not a readable image"):
        load_image(b"not an image at all")
    with pytest.raises(QueryImageError, match="not a readable image"):
        load_image(tmp_path / "missing.png")


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    im = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    im.save(tmp_path / "rot.jpg", "JPEG", exif=exif)
    assert load_image(tmp_path / "rot.jpg").shape == (40, 20, 3)


# -- text + image -------------------------------------------------------------------------------------
def test_fused_query_scores_frames_by_the_weighted_sum_of_cosines():
    rng = np.random.default_rng(0)
    t, i = unit_rows(rng.standard_normal((1, 16))), unit_rows(rng.standard_normal((1, 16)))
    frames = unit_rows(rng.standard_normal((50, 16)))
    for w in (0.0, 0.2, 0.5, 0.9, 1.0):
        fused = (frames @ fuse(t, i, w).T)[:, 0]
        summed = (1 - w) * (frames @ t.T)[:, 0] + w * (frames @ i.T)[:, 0]
        ratio = fused / summed
        assert np.allclose(ratio, ratio[0])  # one positive constant for every frame: the same ranking
        assert ratio[0] > 0
    assert np.allclose(fuse(t, i, 0.0), t) and np.allclose(fuse(t, i, 1.0), i)
    with pytest.raises(ValueError):
        fuse(t, i, 1.5)


# -- search by image ----------------------------------------------------------------------------------
def test_an_image_finds_its_clip_and_the_moment(world, searcher, tmp_path):
    d, manifest = world
    fps = manifest["fps"]
    for clip in manifest["clips"]:
        t = both_present(clip, fps)
        image = png_at(d / clip["video"], t, tmp_path / "q.png")
        hits = search_image(searcher, image, SearchParams(aggregation="max", rerank=False, k=3))
        assert hits[0].video_id == clip["video"], (clip["video"], [h.video_id for h in hits])
        assert hits[0].moment[0] - 0.5 <= t <= hits[0].moment[1] + 0.5
        assert len(search_image(searcher, image.read_bytes())) >= 1  # the default search, from bytes


def test_text_and_image_fusion_ends_are_text_search_and_image_search(world, searcher, tmp_path):
    d, manifest = world
    clip = manifest["clips"][1]
    image = png_at(d / clip["video"], both_present(clip, manifest["fps"]), tmp_path / "q.png")
    query = next(q["query"] for q in manifest["queries"] if q["video"] == clip["video"])
    params = SearchParams(k=5)
    ids = lambda hits: [h.video_id for h in hits]  # noqa: E731
    assert ids(search_image(searcher, image, params, text=query, weight=1.0)) == ids(
        search_image(searcher, image, params)
    )
    assert ids(search_image(searcher, image, params, text=query, weight=0.0)) == ids(searcher.search(query, params))
    assert search_image(searcher, image, params, text=query)[0].video_id == clip["video"]
    with pytest.raises(ValueError, match="empty query"):
        search_image(searcher, image, params, text="  ")


# -- search by clip -----------------------------------------------------------------------------------
def test_a_clip_finds_its_video_and_the_aligned_segment(world, searcher):
    d, manifest = world
    assert store_sampling(searcher.store) == SAMPLING
    clip = manifest["clips"][2]
    hits = search_clip(searcher, d / clip["video"], start=3.0, end=8.0, params=ClipSearchParams(k=3))
    top = hits[0]
    assert top.video_id == clip["video"] and top.aligned
    assert top.segment == pytest.approx((3.0, 8.0), abs=0.5)
    assert 3.0 <= top.query_segment[0] and top.query_segment[1] <= 8.0
    assert top.similarity > 0.98 and top.coverage > 0.8
    assert [h.score for h in hits if h.aligned] == sorted([h.score for h in hits if h.aligned], reverse=True)
    json.dumps([h.as_dict() for h in hits])  # JSON-ready for the service


def test_a_whole_clip_query_and_bad_ranges(world, searcher, tmp_path):
    d, manifest = world
    clip = manifest["clips"][3]
    top = search_clip(searcher, d / clip["video"])[0]
    assert top.video_id == clip["video"] and top.segment[1] - top.segment[0] > 0.8 * clip["duration"]
    with pytest.raises(ValueError, match="must be after"):
        search_clip(searcher, d / clip["video"], start=5.0, end=2.0)
    with pytest.raises(ValueError, match="no sampled frame"):
        search_clip(searcher, d / clip["video"], start=100.0, end=120.0)
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(DecodeError):
        search_clip(searcher, tmp_path / "bad.mp4")


@pytest.mark.server
@pytest.mark.slow
def test_image_and_clip_queries_on_the_server(world, milvus, testbed_clip, tmp_path):
    d, manifest = world
    with VideoStore(milvus, prefix="qbe") as store:
        fill_store(store, world, testbed_clip)
        s = Searcher(store, clip=testbed_clip, warn=False)
        clip = manifest["clips"][2]
        t = both_present(clip, manifest["fps"])
        hits = search_image(s, png_at(d / clip["video"], t, tmp_path / "q.png"), SearchParams(k=3))
        assert hits[0].video_id == clip["video"] and hits[0].moment[0] - 0.5 <= t <= hits[0].moment[1] + 0.5
        top = search_clip(s, d / clip["video"], start=3.0, end=8.0)[0]
        assert top.video_id == clip["video"] and top.segment == pytest.approx((3.0, 8.0), abs=0.5)
