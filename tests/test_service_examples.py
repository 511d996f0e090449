"""Search by image and by clip over HTTP (apps/service/routes_examples.py), over a small testbed world indexed
with the trained ``testbed`` model (tests/qbe_world.py): a frame's clip ranks first, a clip finds its video with
the aligned segment in both, and bad uploads get a clear 4xx."""

from __future__ import annotations

import pytest

fastapi = pytest.importorskip("fastapi")
from conftest import FFMPEG  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from qbe_world import both_present, ffmpeg, fill_store, png_at, record_decode_limits  # noqa: E402

from vidseek.apps.service import Limits, create_app  # noqa: E402
from vidseek.apps.testbed.world import generate_world  # noqa: E402
from vidseek.pipeline.sources import video_id_for  # noqa: E402
from vidseek.store.video_store import VideoStore  # noqa: E402

LIMITS = Limits(max_image_bytes=300_000, max_clip_bytes=3_000_000, max_clip_frames=16)  # small: 413s and caps
EXACT = {"aggregation": "max", "rerank": "false"}  # as tests/test_query_by_example.py ranks a frame's own clip
TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if FFMPEG is None:
        pytest.skip("ffmpeg binary not installed")
    d = tmp_path_factory.mktemp("qbe-svc-world")
    return d, generate_world(d, seed=5, n_content=5, n_brief=0, n_order=0)


@pytest.fixture(scope="module")
def api(world, tmp_path_factory, testbed_clip):
    uri = str(tmp_path_factory.mktemp("qbe-svc") / "s.db")
    with VideoStore(uri) as s:
        fill_store(s, world, testbed_clip, id_of=video_id_for)  # ids as the index job makes them: files are served
    app = create_app(uri, clip=testbed_clip, limits=LIMITS)
    yield TestClient(app)
    app.state.service.close()


def upload(api, route: str, path, kind: str, **params):
    with open(path, "rb") as f:
        return api.post(route, params=params, files={"file": (path.name, f.read(), kind)})


def test_an_uploaded_frame_finds_its_clip_first(world, api, tmp_path):
    d, manifest = world
    for clip, suffix in zip(manifest["clips"][:3], TYPES):
        video = d / clip["video"]
        t = both_present(clip, manifest["fps"])
        image = png_at(video, t, tmp_path / f"shot.{suffix}")
        r = upload(api, "/search/image", image, TYPES[suffix], k=3, **EXACT)
        assert r.status_code == 200, r.text
        body = r.json()
        top = body["hits"][0]
        assert top["video_id"] == video_id_for(video) and top["name"] == clip["video"], body["hits"]
        assert top["moment"][0] - 0.5 <= t <= top["moment"][1] + 0.5
        assert body["image"] == image.name and body["query"] is None and body["params"]["k"] == 3
        thumb = api.get(top["thumbnail"])  # the hit's media URLs work as text search's do
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"


def test_text_fused_with_the_image_ends_at_text_search(world, api, tmp_path):
    d, manifest = world
    clip = manifest["clips"][1]
    image = png_at(d / clip["video"], both_present(clip, manifest["fps"]), tmp_path / "q.png")
    text = next(q["query"] for q in manifest["queries"] if q["video"] == clip["video"])
    text_ids = [h["video_id"] for h in api.get("/search", params={"q": text, "k": 5}).json()["hits"]]
    r = upload(api, "/search/image", image, "image/png", q=text, weight=0.0, k=5)
    assert r.status_code == 200, r.text
    assert [h["video_id"] for h in r.json()["hits"]] == text_ids
    fused = upload(api, "/search/image", image, "image/png", q=text, k=5).json()
    assert fused["hits"][0]["name"] == clip["video"] and fused["weight"] == 0.5


def test_an_uploaded_clip_and_a_clip_of_an_indexed_video_find_the_segment(world, api):
    d, manifest = world
    clip = manifest["clips"][2]
    video = d / clip["video"]
    r = upload(api, "/search/clip", video, "video/mp4", start=3, end=8, k=3)
    assert r.status_code == 200, r.text
    top = r.json()["hits"][0]
    assert top["video_id"] == video_id_for(video) and top["aligned"] and top["rank"] == 1
    assert top["segment"] == pytest.approx([3.0, 8.0], abs=0.5)
    assert 3.0 <= top["query_segment"][0] < top["query_segment"][1] <= 8.0
    assert top["thumbnail"].startswith(f"/videos/{top['video_id']}/thumbnail?t=")
    r = api.get(f"/search/clip/{video_id_for(video)}", params={"start": 3, "end": 8, "k": 3})
    assert r.status_code == 200, r.text
    by_id = r.json()
    assert by_id["clip"] == video_id_for(video) and by_id["hits"][0]["segment"] == pytest.approx([3.0, 8.0], abs=0.5)


def test_bad_uploads_get_clear_4xx(world, api, tmp_path):
    d, manifest = world
    video = d / manifest["clips"][0]["video"]
    ffmpeg("-i", str(video), "-frames:v", "1", str(tmp_path / "f.gif"))
    r = upload(api, "/search/image", tmp_path / "f.gif", "image/gif")
    assert r.status_code == 415 and "f.gif: image/gif; upload a JPEG, PNG or WebP image" in r.json()["detail"]
    r = upload(api, "/search/image", tmp_path / "f.gif", "image/png")  # a GIF sent as a PNG
    assert r.status_code == 422 and "f.gif: GIF image; use JPEG, PNG or WebP" in r.json()["detail"]
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but nothing else")
    r = upload(api, "/search/image", tmp_path / "broken.png", "image/png")
    assert r.status_code == 422 and "broken.png: not a readable image" in r.json()["detail"]
    (tmp_path / "big.png").write_bytes(b"\x00" * (LIMITS.max_image_bytes + 1))
    r = upload(api, "/search/image", tmp_path / "big.png", "image/png")
    assert r.status_code == 413 and str(LIMITS.max_image_bytes) in r.json()["detail"]
    assert api.post("/search/image").status_code == 422  # no file part
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 1000)  # an MP4 by its first bytes only
    r = upload(api, "/search/clip", tmp_path / "bad.mp4", "video/mp4")
    assert r.status_code == 422 and "bad.mp4: the clip cannot be decoded" in r.json()["detail"]
    (tmp_path / "empty.mp4").write_bytes(b"")
    r = upload(api, "/search/clip", tmp_path / "empty.mp4", "video/mp4")
    assert r.status_code == 422 and "empty.mp4: empty file" in r.json()["detail"]
    r = upload(api, "/search/clip", video, "text/plain")
    assert r.status_code == 415 and "upload a video file" in r.json()["detail"]
    r = upload(api, "/search/clip", video, "video/mp4", start=5, end=2)
    assert r.status_code == 422 and "start (5 s) must be before end (2 s)" in r.json()["detail"]
    (tmp_path / "big.mp4").write_bytes(b"\x00" * (LIMITS.max_clip_bytes + 1))
    assert upload(api, "/search/clip", tmp_path / "big.mp4", "video/mp4").status_code == 413
    assert api.get("/search/clip/0123456789abcdef0123").status_code == 404


def test_a_store_without_frame_vectors_says_so(world, tmp_path, testbed_clip):
    d, manifest = world
    video = d / manifest["clips"][0]["video"]
    uri = str(tmp_path / "bare.db")
    with VideoStore(uri) as s:
        s.ensure_model(testbed_clip.stamp())
    app = create_app(uri, clip=testbed_clip)
    try:
        api = TestClient(app)
        r = upload(api, "/search/image", png_at(video, 1.0, tmp_path / "f.png"), "image/png")
        assert r.status_code == 409 and "holds no frame vectors" in r.json()["detail"]
        r = upload(api, "/search/clip", video, "video/mp4")
        assert r.status_code == 409 and "holds no frame vectors" in r.json()["detail"]
    finally:
        app.state.service.close()


def test_a_clip_is_decoded_under_a_fixed_limit_and_a_frame_cap(world, api, monkeypatch):
    from vidseek.operators.isolated_decode import DecodeLimit

    limits = record_decode_limits(monkeypatch)
    d, manifest = world
    video = d / manifest["clips"][2]["video"]
    assert upload(api, "/search/clip", video, "video/mp4", start=3, end=8, k=1).status_code == 200
    assert limits == [DecodeLimit(LIMITS.clip_decode_s, 0.0)]  # not the header's duration × 2 s
    r = upload(api, "/search/clip", video, "video/mp4", k=1)  # the whole clip at fps:2: over the cap
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert f"{video.name}: more than {LIMITS.max_clip_frames} sampled frames in the whole clip" in detail
    r = upload(api, "/search/clip", video, "video/mp4", end=100, k=1)
    assert r.status_code == 422 and "from 0 s to 100 s" in r.json()["detail"]


def test_a_playlist_or_other_non_video_upload_is_refused_by_its_bytes(world, api, tmp_path):
    playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
    for name in ("list.m3u8", "list.mp4"):  # whatever its name and declared type say
        (tmp_path / name).write_bytes(playlist)
        r = upload(api, "/search/clip", tmp_path / name, "video/mp4")
        assert r.status_code == 415, r.text
        assert f"{name}: not an MP4/MOV, Matroska/WebM or AVI file" in r.json()["detail"]
    (tmp_path / "x.txt").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")  # a RIFF that is no AVI
    assert upload(api, "/search/clip", tmp_path / "x.txt", "video/x-msvideo").status_code == 415


def test_container_sniffing():
    from vidseek.apps.service.uploads import sniff_container

    assert sniff_container(b"\x00\x00\x00\x20ftypisom\x00\x00") == ".mp4"
    assert sniff_container(b"\x00\x00\x00\x14ftypqt  \x00\x00") == ".mov"
    assert sniff_container(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81") == ".mkv"
    assert sniff_container(b"RIFF\x10\x00\x00\x00AVI LIST") == ".avi"
    assert sniff_container(b"#EXTM3U\n#EXT-X-VERSION:3") is None
    assert sniff_container(b"ffconcat version 1.0\n") is None


def test_clip_temp_files_are_named_by_the_sniffed_type_and_removed(world, api, tmp_path, monkeypatch):
    import tempfile
    from pathlib import Path

    from vidseek.apps.service import routes_examples

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where mkstemp puts the clip
    seen = []
    real = routes_examples.run_clip

    def spying(svc, path, name, chosen):
        seen.append((Path(path).name, Path(path).exists()))
        return real(svc, path, name, chosen)

    monkeypatch.setattr(routes_examples, "run_clip", spying)
    d, manifest = world
    video = d / manifest["clips"][2]["video"]
    renamed = tmp_path / "clip.m3u8"  # a real MP4 under a playlist's name: the temp file is an .mp4
    renamed.write_bytes(video.read_bytes())
    assert upload(api, "/search/clip", renamed, "video/mp4", start=3, end=8, k=1).status_code == 200
    assert upload(api, "/search/clip", renamed, "video/mp4", start=50, end=60, k=1).status_code == 422  # no frame
    assert len(seen) == 2 and all(
        name.startswith("vidseek-clip-") and name.endswith(".mp4") and ok for name, ok in seen
    )
    assert list(tmp_path.glob("vidseek-clip-*")) == []  # gone after the 200 and after the 422


def test_the_frame_vector_check_is_kept_until_the_store_is_written(world, api, tmp_path, monkeypatch):
    svc = api.app.state.service
    calls = []
    real = svc.store.count_frames
    monkeypatch.setattr(svc.store, "count_frames", lambda *a, **k: calls.append(1) or real(*a, **k))
    svc._frames_at = None
    d, manifest = world
    image = png_at(d / manifest["clips"][0]["video"], 1.0, tmp_path / "f.png")
    for _ in range(3):
        assert upload(api, "/search/image", image, "image/png", k=1).status_code == 200
    assert len(calls) == 1  # counted once, not per request
    generation = svc.store.generation
    svc.store.delete_videos(["no-such-video"])  # a write in this process (the store's write hook announces it)
    assert svc.store.generation == generation + 1  # counted again below
    assert upload(api, "/search/image", image, "image/png", k=1).status_code == 200
    assert len(calls) == 2


def test_chunked_uploads_over_the_limit_are_413_and_other_paths_keep_theirs(api):
    def chunked(*sizes: int):
        return (b"x" * n for n in sizes)  # a generator body: sent chunked, with no Content-Length

    multipart = {"content-type": "multipart/form-data; boundary=b"}
    r = api.post("/search/image", content=chunked(*[65536] * 6), headers=multipart)  # 393 KB > 300 KB
    assert r.status_code == 413 and f"over {LIMITS.max_image_bytes} bytes" in r.json()["detail"]
    r = api.post("/search/clip", content=chunked(*[1_000_000] * 4), headers=multipart)
    assert r.status_code == 413 and f"over {LIMITS.max_clip_bytes} bytes" in r.json()["detail"]
    json_type = {"content-type": "application/json"}
    just_over = LIMITS.max_body_bytes + 1
    assert api.post("/search", content=b"x" * just_over, headers=json_type).status_code == 413
    assert api.post("/search", content=chunked(LIMITS.max_body_bytes, 1), headers=json_type).status_code == 413
    r = api.post("/search", content=chunked(LIMITS.max_body_bytes), headers=json_type)
    assert r.status_code == 422  # at the limit: read, and refused as the bad JSON it is
    r = api.post("/search", content=chunked(2_000_000), headers=json_type)  # under the clip limit, not /search's
    assert r.status_code == 413 and f"over {LIMITS.max_body_bytes} bytes" in r.json()["detail"]
