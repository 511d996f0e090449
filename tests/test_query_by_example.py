"""Query by example (retrieval/query_by_example.py): images through the store's preprocessing, text + image
fusion, and video-clip queries aligned against stored frame sequences.

The store holds a small testbed world (content clips, each two objects of its own) indexed directly with the
operators the index job uses (decode at fps:2, the bundled ``testbed`` model), without starting Ray.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import FFMPEG
from qbe_world import SAMPLING, both_present, both_present_frames, ffmpeg, fill_store, png_at

from vidseek.apps.testbed.world import generate_world
from vidseek.operators.decode import DecodeError, decode_frames
from vidseek.operators.encode import encode_images
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


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if FFMPEG is None:
        pytest.skip("ffmpeg binary not installed")
    d = tmp_path_factory.mktemp("qbe-world")
    return d, generate_world(d, seed=5, n_content=5, n_brief=0, n_order=0)


@pytest.fixture(scope="module")
def searcher(world, tmp_path_factory, testbed_clip):
    store = VideoStore(str(tmp_path_factory.mktemp("qbe") / "s.db"))
    fill_store(store, world, testbed_clip)
    yield Searcher(store, clip=testbed_clip, warn=False)
    store.close()


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


def png_declaring(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes whose header declares width × height pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )


def test_an_image_declaring_too_many_pixels_is_refused_before_decoding():
    from PIL import Image

    before = Image.MAX_IMAGE_PIXELS
    # 81 M pixels: under Pillow's own limits, over ours (it failed in load() before); 400 M: Pillow's bomb error
    for w, h in ((9000, 9000), (20000, 20000)):
        data = png_declaring(w, h)
        assert len(data) < 100
        with pytest.raises(QueryImageError, match="uploaded image: over the 64000000 pixels a query image may have"):
            load_image(data)
    assert Image.MAX_IMAGE_PIXELS == before  # Pillow's process-wide setting is left alone
    with pytest.raises(QueryImageError, match="not a readable image"):  # a small header passes the check: its
        load_image(png_declaring(4, 4))  # (too short) pixel data is what fails then


def test_a_camera_jpeg_with_a_second_picture_mpo_is_taken_as_its_first(tmp_path):
    from PIL import Image

    first = np.full((20, 40, 3), 200, np.uint8)
    Image.fromarray(first).save(tmp_path / "cam.jpg", "MPO", save_all=True, append_images=[Image.new("RGB", (40, 20))])
    with Image.open(tmp_path / "cam.jpg") as im:
        assert im.format == "MPO" and im.n_frames == 2  # what a camera's JPEG opens as
    rgb = load_image(tmp_path / "cam.jpg")
    assert rgb.shape == (20, 40, 3) and abs(int(rgb.mean()) - 200) <= 2  # the first picture, not the black one
    assert load_image((tmp_path / "cam.jpg").read_bytes()).shape == (20, 40, 3)


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
        # the moment shows what the shot shows: both objects on screen. The testbed model is blind to position
        # (docs/copies.md), so any frame of the stretch where both are present matches the shot about equally,
        # and which of them is best moves with the last bits of the scores (seen in CI: 4.5 s for a 6.4 s shot)
        shown = int(hits[0].best_t * fps)  # the frame on screen at the best sample's time
        assert {shown - 1, shown, shown + 1} & both_present_frames(clip), (t, hits[0].best_t)
        assert hits[0].moment[0] <= hits[0].best_t <= hits[0].moment[1]
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


def test_text_and_image_at_half_weight_score_videos_by_the_documented_fusion(world, searcher, tmp_path):
    d, manifest = world
    clip = manifest["clips"][1]
    image = png_at(d / clip["video"], both_present(clip, manifest["fps"]), tmp_path / "q.png")
    query = next(q["query"] for q in manifest["queries"] if q["video"] == clip["video"])
    w = 0.5
    hits = search_image(searcher, image, SearchParams(k=5, aggregation="max", rerank=False), text=query, weight=w)
    # docs/copies.md: cos(q, f) = ((1 − w)·cos(t, f) + w·cos(i, f)) / |(1 − w)·t + w·i|, a video's max over frames
    t, i = unit_rows(searcher.encode_queries([query]))[0], image_vectors(searcher.clip, [image])[0]
    norm = np.linalg.norm((1 - w) * t + w * i)
    frames = searcher.store.frames_of([h.video_id for h in hits])
    expected = {
        v: float(np.max(((1 - w) * (f @ t) + w * (f @ i)) / norm))
        for v, f in ((v, unit_rows(ft.vectors)) for v, ft in frames.items())
    }
    assert len(hits) == 5 and [h.video_id for h in hits] == sorted(expected, key=expected.get, reverse=True)
    for h in hits:
        assert h.score == pytest.approx(expected[h.video_id], abs=1e-4), h.video_id


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
