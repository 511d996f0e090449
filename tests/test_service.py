"""The HTTP service: every endpoint and its errors, auth, path traversal, limits, ingest, and a schema fuzz.

Search and rerank run over the planted store (known rankings and moments); thumbnails, files and ingest
over a small library of generated clips indexed for real (decode + tiny CLIP, without Ray — see
service_lib). The real Ray ingest is one slow test.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import pytest

fastapi = pytest.importorskip("fastapi")
from conftest import ffmpeg  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from planted import BRIEF_IDX, QUERY, build_planted_store  # noqa: E402
from service_lib import direct_index, index_video, small_library  # noqa: E402

from vidseek.apps.service import Limits, create_app  # noqa: E402
from vidseek.apps.service.auth import Guard, RedactTokens, host_of, is_loopback  # noqa: E402
from vidseek.pipeline.sources import video_id_for  # noqa: E402

TOKEN = "s3cret-token-0123456789abcdef"
META = {"brief": {"genre": "sport", "year": 2020}, "diffuse": {"genre": "news", "year": 2019}}


# -- fixtures -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted_app(tmp_path_factory, tiny_clip):
    uri = str(tmp_path_factory.mktemp("svc_planted") / "p.db")
    build_planted_store(uri, tiny_clip, metadata=META)
    app = create_app(uri, clip=tiny_clip)
    yield app
    app.state.service.close()


@pytest.fixture(scope="module")
def api(planted_app):
    return TestClient(planted_app)


@pytest.fixture(scope="module")
def library(tmp_path_factory, media):
    root = tmp_path_factory.mktemp("svc_lib")
    clips = small_library(root / "videos", ffmpeg)
    (root / "incoming").mkdir()
    return root, clips


@pytest.fixture(scope="module")
def lib_app(tmp_path_factory, tiny_clip, library):
    root, clips = library
    uri = str(tmp_path_factory.mktemp("svc_libstore") / "lib.db")
    app = create_app(uri, token=TOKEN, clip=tiny_clip, ingest_roots=[root], index_fn=direct_index)
    store = app.state.service.store
    store.ensure_model(tiny_clip.stamp())
    for name in ("redblue", "bars"):
        p = str(clips[name])
        index_video(store, tiny_clip, p, video_id_for(p), metadata={"name": name})
    store.upsert_videos(
        [
            {
                "video_id": "brokenrow",
                "path": "/etc/passwd",
                "status": "failed",
                "stage": "decode",
                "error": "/etc/passwd: not a video",
            },
            {"video_id": "gonefile", "path": str(root / "gone.mp4"), "status": "ok", "duration": 2.0},
        ]
    )
    yield app
    app.state.service.close()


@pytest.fixture(scope="module")
def lib(lib_app):
    return TestClient(lib_app, headers={"Authorization": f"Bearer {TOKEN}"})


def vid(clips, name) -> str:
    return video_id_for(str(clips[name]))


# -- search ---------------------------------------------------------------------------------------------
def test_search_get_returns_hits_with_moments(api):
    r = api.get("/search", params={"q": QUERY, "k": 3, "aggregation": "max", "rerank": "false"})
    assert r.status_code == 200, r.text
    body = r.json()
    top = body["hits"][0]
    assert top["video_id"] == "brief" and top["rank"] == 1
    assert top["moment"] == [BRIEF_IDX, BRIEF_IDX + 1] and top["best_t"] == pytest.approx(BRIEF_IDX + 0.5)
    assert (
        top["thumbnail"] == f"/videos/brief/thumbnail?t={BRIEF_IDX + 0.5:.3f}" and top["file"] == "/videos/brief/file"
    )
    assert set(top["scores"]) == {"initial", "fine"} and top["metadata"] == META["brief"]
    assert len(body["hits"]) == 3 and body["params"]["rerank"] is False
    mean = api.get("/search", params={"q": QUERY, "aggregation": "mean", "rerank": "false"}).json()
    assert mean["hits"][0]["video_id"] == "diffuse"


def test_search_warns_when_the_store_model_has_random_weights(api, tmp_path, testbed_clip):
    for r in (api.get("/search", params={"q": QUERY}), api.post("/search", json={"q": QUERY})):
        assert r.status_code == 200 and r.json()["hits"]
        assert r.json()["warning"].startswith("model tiny-random has random weights: search results are random")
    uri = str(tmp_path / "trained.db")
    build_planted_store(uri, testbed_clip)
    app = create_app(uri, clip=testbed_clip)
    try:
        body = TestClient(app).get("/search", params={"q": QUERY}).json()
        assert body["hits"] and body["warning"] is None
    finally:
        app.state.service.close()


def test_search_post_typed_and_string_filters(api):
    r = api.post("/search", json={"q": QUERY, "k": 10, "filters": [{"key": "year", "op": ">=", "value": 2020}]})
    assert [h["video_id"] for h in r.json()["hits"]] == ["brief"]
    r = api.post("/search", json={"q": QUERY, "filters": ["genre=news"]})
    assert [h["video_id"] for h in r.json()["hits"]] == ["diffuse"]
    r = api.get("/search", params=[("q", QUERY), ("filter", "genre=sport"), ("filter", "year<2021")])
    assert [h["video_id"] for h in r.json()["hits"]] == ["brief"]
    # a typed string value is a string: "2020" does not match the number 2020
    r = api.post("/search", json={"q": QUERY, "filters": [{"key": "year", "value": "2020"}]})
    assert r.status_code == 200 and r.json()["hits"] == []
    # hostile text stays one quoted value
    for f in ['genre=news" or video_id != "', {"key": "genre", "value": 'x" or 1 == 1 or "'}]:
        r = api.post("/search", json={"q": QUERY, "filters": [f]})
        assert r.status_code == 200 and r.json()["hits"] == []


def test_search_rerank_toggle_and_scores_beyond_depth(api):
    on = api.post("/search", json={"q": QUERY, "k": 6, "rerank": True}).json()["hits"]
    assert set(on[0]["scores"]) == {"initial", "fine", "fused"}
    r = api.post("/search", json={"q": QUERY, "k": 6, "depth": 1, "rerank": True})
    assert r.status_code == 200
    scores = [h["score"] for h in r.json()["hits"]]
    assert scores[0] is not None and scores[1:] == [None] * (len(scores) - 1)  # -inf beyond depth -> null


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "x" * 1001},
        {"q": QUERY, "k": 0},
        {"q": QUERY, "k": 1001},
        {"q": QUERY, "depth": 1001},
        {"q": QUERY, "aggregation": "median"},
        {"q": QUERY, "alpha": 1.5},
        {"q": QUERY, "tau": "nan"},
        {"q": QUERY, "tau": 0},
        {"q": QUERY, "k": "ten"},
        {"q": "   "},
        {"q": QUERY, "filter": "1bad=2"},
        {"q": QUERY, "filter": "genre"},
        {"q": QUERY, "filter": "year=inf"},
        {"q": QUERY, "filter": "x" * 300},
        {"q": QUERY, "filter": ["a=1"] * 33},
    ],
)
def test_search_bad_parameters_are_422(api, params):
    r = api.get("/search", params=params)
    assert r.status_code == 422, (params, r.text)
    assert r.headers["content-type"] == "application/json" and "detail" in r.json()


@pytest.mark.parametrize(
    "body",
    [
        {"q": QUERY, "filters": [{"key": "a b", "value": 1}]},
        {"q": QUERY, "filters": [{"key": "genre", "op": "~=", "value": "x"}]},
        {"q": QUERY, "filters": [{"key": "genre", "value": "tab\there"}]},
        {"q": QUERY, "filters": [{"key": "genre", "value": [1, 2]}]},
        {"q": QUERY, "filters": [{"key": "year", "value": None}]},
        {"q": QUERY, "unknown": 1},
        {"q": 5},
        [QUERY],
    ],
)
def test_search_post_bad_bodies_are_422(api, body):
    r = api.post("/search", json=body)
    assert r.status_code == 422, (body, r.text)


def test_bad_json_non_finite_and_surrogates_are_422(api):
    for raw in (b'{"q": ', b'{"q": "x", "tau": NaN}', b'{"q": "x", "alpha": Infinity}', b'{"q": "\\ud800"}'):
        r = api.post("/search", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, (raw, r.text)
    r = api.post("/search", content=json.dumps({"q": QUERY}), headers={"content-type": "text/plain"})
    assert r.status_code == 422


def test_learned_without_heads_is_400_and_unknown_routes_are_json(api):
    r = api.get("/search", params={"q": QUERY, "aggregation": "learned"})
    assert r.status_code == 400 and "learned" in r.json()["detail"]
    assert api.get("/nope").status_code == 404 and api.get("/nope").json()
    assert api.delete("/search").status_code == 405


def test_body_size_limit_is_413(api):
    big = {"q": QUERY, "filters": ["a=" + "x" * 200] * 6000}  # ~1.3 MB
    assert api.post("/search", json=big).status_code == 413
    chunks = (b"x" * 65536 for _ in range(20))  # chunked, no Content-Length
    assert api.post("/search", content=chunks, headers={"content-type": "application/json"}).status_code == 413


# -- rerank ---------------------------------------------------------------------------------------------
def test_rerank_keeps_unknown_ids_in_place(api, h264_mp4):
    cands = [
        {"id": "noise0", "score": 3.0},
        {"id": "not-indexed", "score": 2.5, "path": str(h264_mp4)},
        {"id": "diffuse", "score": 2.0},
        {"id": "brief", "score": 1.0},
    ]
    r = api.post("/rerank", json={"query": QUERY, "candidates": cands, "alpha": 0.2})
    assert r.status_code == 200, r.text
    body = r.json()
    ids = [c["id"] for c in body["candidates"]]
    assert ids[1] == "not-indexed" and ids[0] == "brief"  # its slot is kept; brief's frame evidence wins
    assert body["without_evidence"] == ["not-indexed"] and body["rescored"] == 3
    unknown = body["candidates"][1]
    assert unknown["evidence"] is False and unknown["fine_score"] is None  # the path was never opened
    assert body["candidates"][0]["fine_score"] == pytest.approx(1.0, abs=1e-4)
    # a path matching an indexed path or stem finds the store's evidence
    r = api.post("/rerank", json={"query": QUERY, "candidates": [{"id": "x", "score": 0, "path": "/videos/brief.mp4"}]})
    assert r.json()["candidates"][0]["evidence"] is True
    r = api.post("/rerank", json={"query": QUERY, "candidates": []})
    assert r.status_code == 200 and r.json()["candidates"] == []


def test_rerank_depth_and_errors(api):
    cands = [{"id": v, "score": float(10 - i)} for i, v in enumerate(["noise0", "noise1", "diffuse", "brief"])]
    r = api.post("/rerank", json={"query": QUERY, "candidates": cands, "depth": 2})
    assert [c["id"] for c in r.json()["candidates"]][2:] == ["diffuse", "brief"]  # beyond depth: untouched
    for body in (
        {"query": QUERY},
        {"query": "", "candidates": cands},
        {"query": " ", "candidates": cands},
        {"query": QUERY, "candidates": [{"id": "a"}]},
        {"query": QUERY, "candidates": [{"id": "a", "score": 1e300}]},
        {"query": QUERY, "candidates": [{"id": "", "score": 1}]},
        {"query": QUERY, "candidates": [{"id": "a", "score": 1}] * 1001},
        {"query": QUERY, "candidates": cands, "alpha": -1},
    ):
        assert api.post("/rerank", json=body).status_code == 422, body


# -- videos ---------------------------------------------------------------------------------------------
def test_video_metadata_without_vectors(api):
    r = api.get("/videos/brief")
    assert r.status_code == 200
    row = r.json()
    assert row["video_id"] == "brief" and row["status"] == "ok" and row["n_frames"] == 20
    assert row["metadata"] == META["brief"] and row["file"] == "/videos/brief/file"
    assert not {"mean_vec", "learned_vec"} & set(row)
    assert api.get("/videos/nope").status_code == 404


def _jpeg(data: bytes):
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG"
    return img.convert("RGB")


def test_thumbnail_is_the_frame_at_t(lib, library):
    _, clips = library
    v = vid(clips, "redblue")
    red = lib.get(f"/videos/{v}/thumbnail", params={"t": 0.5})
    assert red.status_code == 200 and red.headers["content-type"] == "image/jpeg"
    img = _jpeg(red.content)
    assert img.width == 320 and img.height == 240
    r, g, b = img.getpixel((160, 120))
    assert r > 200 and b < 60, (r, g, b)
    r, g, b = _jpeg(lib.get(f"/videos/{v}/thumbnail", params={"t": 3.0}).content).getpixel((160, 120))
    assert b > 200 and r < 60, (r, g, b)
    # t is clamped to the video: before the start is the first frame, past the end the last
    assert _jpeg(lib.get(f"/videos/{v}/thumbnail", params={"t": -5}).content).getpixel((5, 5))[0] > 200
    assert _jpeg(lib.get(f"/videos/{v}/thumbnail", params={"t": 1e9}).content).getpixel((5, 5))[2] > 200
    assert lib.get(f"/videos/{v}/thumbnail").status_code == 200  # t defaults to 0
    for bad in ("nan", "inf", "abc"):
        assert lib.get(f"/videos/{v}/thumbnail", params={"t": bad}).status_code == 422


def test_file_supports_range_requests(lib, library):
    _, clips = library
    v = vid(clips, "bars")
    data = clips["bars"].read_bytes()
    full = lib.get(f"/videos/{v}/file")
    assert full.status_code == 200 and full.content == data
    assert full.headers["content-type"] == "video/mp4" and full.headers["accept-ranges"] == "bytes"
    part = lib.get(f"/videos/{v}/file", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = lib.get(f"/videos/{v}/file", headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == data[-50:]
    rest = lib.get(f"/videos/{v}/file", headers={"Range": f"bytes={len(data) - 10}-"})
    assert rest.status_code == 206 and rest.content == data[-10:]
    assert lib.get(f"/videos/{v}/file", headers={"Range": f"bytes={len(data) + 5}-"}).status_code == 416
    webm = lib.get(f"/videos/{vid(clips, 'redblue')}/file", headers={"Range": "bytes=0-0"})
    assert webm.status_code == 206 and len(webm.content) == 1


def test_file_endpoints_serve_only_ok_videos_that_exist(lib):
    row = lib.get("/videos/brokenrow").json()
    assert row["status"] == "failed" and row["file"] is None and row["thumbnail"] is None
    for path in (
        "/videos/brokenrow/file",
        "/videos/brokenrow/thumbnail",
        "/videos/gonefile/file",
        "/videos/gonefile/thumbnail?t=1",
    ):
        r = lib.get(path)
        assert r.status_code == 404 and b"root:" not in r.content, path


def test_file_changed_since_indexing_is_not_served(lib_app, lib, library):
    root, clips = library
    p = root / "incoming" / "changing.mp4"
    p.write_bytes(clips["bars"].read_bytes())
    store = lib_app.state.service.store
    v = video_id_for(p)
    index_video(store, lib_app.state.service.clip, str(p), v)
    assert lib.get(f"/videos/{v}/file").status_code == 200
    with open(p, "ab") as f:
        f.write(b"\0" * 10)  # size and mtime change: not the file that was indexed any more
    for suffix in ("/file", "/thumbnail"):
        r = lib.get(f"/videos/{v}{suffix}")
        assert r.status_code == 404 and "changed" in r.json()["detail"]
    p.unlink()
    p.symlink_to("/etc/passwd")  # a swapped symlink is not the indexed file either
    r = lib.get(f"/videos/{v}/file")
    assert r.status_code == 404 and b"root:" not in r.content
    p.unlink()
    store.delete_videos([v])


TRAVERSAL = [
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%252F..%252Fetc%252Fpasswd",
    "%2Fetc%2Fpasswd",
    "..",
    "%2e%2e",
    "%2E%2E%2F",
    "%2e%2e%2f",
    "....//....//etc/passwd",
    "..%5c..%5cetc%5cpasswd",
    "%00",
    "brokenrow%00",
    "C:%5CWindows%5Cwin.ini",
    "~root",
    "%252e%252e",
    "file:%2F%2F%2Fetc%2Fpasswd",
    "brokenrow%2F..%2F..%2Fetc",
]


@pytest.mark.parametrize("suffix", ["", "/thumbnail", "/thumbnail?t=1", "/file"])
@pytest.mark.parametrize("ident", TRAVERSAL)
def test_path_traversal_never_reads_files(lib_app, ident, suffix):
    status, headers, body = raw_get(lib_app, f"/videos/{ident}{suffix}")
    assert status in (307, 400, 404, 422), (ident, suffix, status)
    assert b"root:" not in body and b"[fonts]" not in body
    if status == 307:  # Starlette's trailing-slash redirect, to a path that is refused in turn
        status, _, body = raw_get(lib_app, "/" + headers["location"].split("://", 1)[1].split("/", 1)[1])
        assert status in (400, 404, 422) and b"root:" not in body
    else:
        assert headers["content-type"] == "application/json"


def raw_get(app, raw_path: str, token: str = TOKEN) -> tuple[int, dict, bytes]:
    """One GET through the ASGI app with the path exactly as a server passes it (percent-decoded ``path``,
    untouched ``raw_path``): no client-side normalisation of dot segments."""
    import asyncio
    from urllib.parse import unquote

    path, _, query = raw_path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    out: dict = {"body": b""}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(msg):
        if msg["type"] == "http.response.start":
            out["status"] = msg["status"]
            out["headers"] = {k.decode(): v.decode() for k, v in msg["headers"]}
        elif msg["type"] == "http.response.body":
            out["body"] += msg.get("body", b"")

    asyncio.run(app(scope, receive, send))
    return out["status"], out["headers"], out["body"]


def test_absolute_path_urls_are_not_files(lib):
    for url in (
        "/videos//etc/passwd",
        "/videos//etc/passwd/file",
        "//etc/passwd",
        "/static/../../etc/passwd",
        "/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/static/app.js%00.html",
    ):
        r = lib.get(url)
        assert r.status_code in (400, 404), (url, r.status_code)
        assert b"root:" not in r.content


# -- auth -----------------------------------------------------------------------------------------------
def test_token_required_everywhere_but_page_and_healthz(lib_app, library):
    _, clips = library
    v = vid(clips, "bars")
    anon = TestClient(lib_app)
    wrong = TestClient(lib_app, headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"})
    for method, url, body in [
        ("get", "/search?q=red", None),
        ("post", "/search", {"q": "red"}),
        ("post", "/rerank", {"query": "red", "candidates": []}),
        ("get", f"/videos/{v}", None),
        ("get", f"/videos/{v}/thumbnail", None),
        ("get", f"/videos/{v}/file", None),
        ("post", "/ingest", {"source": "videos"}),
        ("get", "/ingest", None),
        ("get", "/openapi.json", None),
        ("get", "/info", None),
        ("get", "/nope", None),
    ]:
        for client in (anon, wrong):
            r = getattr(client, method)(url, **({"json": body} if body is not None else {}))
            assert r.status_code == 401, (url, r.status_code)
            assert r.headers["www-authenticate"].startswith("Bearer")
    for url in ("/", "/healthz", "/static/app.js"):
        assert anon.get(url).status_code == 200
    ok = TestClient(lib_app, headers={"Authorization": f"bearer {TOKEN}"})
    assert ok.get("/search", params={"q": "red"}).status_code == 200
    assert anon.get("/search", headers={"Authorization": TOKEN}).status_code == 401  # no scheme
    assert anon.get("/search", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401


def test_media_urls_accept_token_parameter_only_there(lib_app, library):
    _, clips = library
    v = vid(clips, "bars")
    anon = TestClient(lib_app)
    assert anon.get(f"/videos/{v}/thumbnail", params={"t": 1, "token": TOKEN}).status_code == 200
    assert anon.get(f"/videos/{v}/file", params={"token": TOKEN}, headers={"Range": "bytes=0-9"}).status_code == 206
    assert anon.get(f"/videos/{v}/file", params={"token": "wrong"}).status_code == 401
    assert anon.get(f"/videos/{v}/file", params=[("token", "x"), ("token", TOKEN)]).status_code == 401
    assert anon.get("/search", params={"q": "red", "token": TOKEN}).status_code == 401
    assert anon.get(f"/videos/{v}", params={"token": TOKEN}).status_code == 401


def _echo_app(scope, receive, send):
    async def app():
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})

    return app()


def test_guard_host_origin_and_body_rules():
    guard = TestClient(
        Guard(_echo_app, token=None, max_body=100, allowed_hosts={"127.0.0.1", "localhost", "::1"}),
        base_url="http://127.0.0.1:8000",
    )
    assert guard.get("/x").status_code == 200
    assert guard.get("/x", headers={"host": "localhost:8000"}).status_code == 200
    assert guard.get("/x", headers={"host": "[::1]:8000"}).status_code == 200
    assert guard.get("/x", headers={"host": "evil.example:8000"}).status_code == 400  # DNS rebinding
    assert guard.post("/x", content=b"a" * 100).text == "100"
    assert guard.post("/x", content=b"a" * 101).status_code == 413
    assert guard.post("/x", content=b"{}", headers={"origin": "http://evil.example"}).status_code == 403
    assert guard.post("/x", content=b"{}", headers={"origin": "null"}).status_code == 403
    assert guard.post("/x", content=b"{}", headers={"origin": "http://127.0.0.1:8000"}).status_code == 200
    assert guard.post("/x", content=b"{}", headers={"content-length": "abc"}).status_code in (400, 413)
    assert host_of("[::1]:80") == "::1" and host_of("Example.com:80") == "example.com" and host_of("::1") == "::1"
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.168.1.2")


def test_guard_passes_the_body_on_as_it_comes_and_counts_chunked_bodies_per_path():
    import asyncio

    received: list[int] = []

    async def app(scope, receive, send):
        while True:
            msg = await receive()
            received.append(len(msg.get("body", b"")))
            if not msg.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = Guard(app, token=None, max_body=100, upload_paths={"/up": 1000})

    def post(path: str, chunks: list[bytes]) -> tuple[int, list]:
        received.clear()
        msgs = [{"type": "http.request", "body": c, "more_body": i + 1 < len(chunks)} for i, c in enumerate(chunks)]
        sent: list[dict] = []

        async def receive():
            return msgs.pop(0)

        async def send(msg):
            sent.append(msg)

        scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"host", b"h")], "query_string": b""}
        asyncio.run(guard(scope, receive, send))
        return sent[0]["status"], sent

    assert post("/up", [b"a" * 300] * 3)[0] == 200
    assert received == [300, 300, 300]  # chunk by chunk: the guard holds no body
    status, sent = post("/up", [b"a" * 400] * 3)  # 1200 bytes, no Content-Length
    assert status == 413 and b"over 1000 bytes" in sent[1]["body"] and len(sent) == 2
    assert received == [400, 400]  # the chunk past the limit never reached the app
    assert post("/x", [b"a" * 60] * 2)[0] == 413  # another path keeps max_body
    assert post("/up", [b"a" * 60] * 2)[0] == 200


def test_access_log_redacts_tokens():
    import logging

    rec = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4", "GET", f"/videos/a/file?t=1&token={TOKEN}", "1.1", 200),
        None,
    )
    RedactTokens().filter(rec)
    assert TOKEN not in rec.getMessage() and "token=***" in rec.getMessage()


def test_serve_refuses_public_bind_without_token(tmp_path):
    from typer.testing import CliRunner

    from vidseek.apps.cli.main import app

    runner = CliRunner()
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        r = runner.invoke(app, ["serve", "--store", str(tmp_path / "s.db"), "--host", host], env={"VIDSEEK_TOKEN": ""})
        assert r.exit_code == 2 and "refusing to bind" in r.output and "--token" in r.output, r.output
    r = runner.invoke(app, ["serve", "--store", str(tmp_path / "s.db"), "--host", "0.0.0.0", "--token", "short"])
    assert r.exit_code == 2 and "too short" in r.output
    both = ["serve", "--store", str(tmp_path / "s.db"), "--in-memory", "--frame-mirror", str(tmp_path / "m")]
    r = runner.invoke(app, both)
    assert r.exit_code == 2 and "choose one" in r.output, r.output
    assert not (tmp_path / "s.db").exists()  # refused before the store was opened


@pytest.mark.slow  # a subprocess that imports the stack and tries Milvus Lite: 5-15 s on a busy machine
def test_serve_on_a_store_held_by_another_process_fails_fast(api, planted_app):
    uri = planted_app.state.service.store.uri  # held by this process
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "vidseek", "serve", "--store", uri, "--lock-wait", "0.5", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert "another process holds it" in r.stderr and "/ingest" in r.stderr
    assert time.monotonic() - t0 < 60


@pytest.mark.slow
def test_index_on_a_store_held_by_the_service_fails_with_advice(api, planted_app, h264_mp4):
    uri = planted_app.state.service.store.uri  # held by this process, as a running service holds it
    r = subprocess.run(
        [sys.executable, "-m", "vidseek", "index", str(h264_mp4), "--store", uri],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=Path(__file__).resolve().parents[1],
    )
    assert r.returncode == 2 and "cannot open store" in r.stderr and "vidseek serve" in r.stderr, r.stderr[-2000:]
    assert api.get("/healthz").status_code == 200  # the service is unaffected


# -- ingest ---------------------------------------------------------------------------------------------
def _wait(client, job_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/ingest/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"ingest job {job_id} did not finish")


def test_ingest_indexes_through_the_service_while_searching(lib, lib_app, library):
    root, clips = library
    new = root / "incoming" / "clock.webm"
    new.write_bytes(clips["clock"].read_bytes())
    svc = lib_app.state.service
    svc.ingest.index_fn = partial(direct_index, delay_s=0.05)
    errors: list = []
    stop = threading.Event()

    def searcher():
        while not stop.is_set():
            r = lib.get("/search", params={"q": "a clock", "k": 10})
            if r.status_code != 200:
                errors.append(r.text)
            for h in r.json().get("hits", []):
                if not h["path"]:
                    errors.append(f"half-indexed hit {h}")

    new_id = video_id_for(str(new))
    rerank_new = {"query": "a clock", "candidates": [{"id": new_id, "score": 1.0}]}
    assert lib.post("/rerank", json=rerank_new).json()["without_evidence"] == [new_id]  # warms the id lookup
    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        r = lib.post("/ingest", json={"source": "incoming"})
        assert r.status_code == 202, r.text
        job = _wait(lib, r.json()["id"])
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors[:3]
    assert job["state"] == "done", job
    assert job["summary"]["indexed"] == 1 and job["progress"]["written"] == 1 and job["progress"]["fraction"] == 1.0
    hits = lib.get("/search", params={"q": "a clock", "k": 10}).json()["hits"]
    assert new_id in {h["video_id"] for h in hits}
    assert lib.post("/rerank", json=rerank_new).json()["candidates"][0]["evidence"] is True  # lookup refreshed
    assert lib.get("/ingest").json()[0]["id"] == job["id"]
    again = _wait(lib, lib.post("/ingest", json={"source": str(root / "incoming")}).json()["id"])
    assert again["summary"]["skipped"] == 1 and again["to_index"] == 0


def _one_video_service(tmp_path_factory, tiny_clip, library, name: str, **options):
    """A service over a new store holding one indexed video (redblue), an ingest root with one more
    (``incoming-<name>/clock.webm``, not indexed) and a client: (service, client, that new file, the indexed path)."""
    root, clips = library
    new = root / f"incoming-{name}" / "clock.webm"
    new.parent.mkdir(exist_ok=True)
    new.write_bytes(clips["clock"].read_bytes())
    uri = str(tmp_path_factory.mktemp(f"svc_{name}") / f"{name}.db")
    app = create_app(uri, token=TOKEN, clip=tiny_clip, ingest_roots=[root], index_fn=direct_index, **options)
    svc = app.state.service
    svc.store.ensure_model(tiny_clip.stamp())
    p = str(clips["redblue"])
    index_video(svc.store, tiny_clip, p, video_id_for(p))
    return svc, TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}), new, p


def test_in_memory_service_sees_ingested_videos(tmp_path_factory, tiny_clip, library):
    """``--in-memory``: searches run on the replica, and an ingest's writes reach it through the store's
    write notifications (no restart, no stale results)."""
    svc, client, new, p = _one_video_service(tmp_path_factory, tiny_clip, library, "mem", in_memory=True)
    try:
        first = client.get("/search", params={"q": "a clock", "k": 10}).json()["hits"]
        assert [h["video_id"] for h in first] == [video_id_for(p)]
        assert svc.searcher().replica is not None and len(svc.searcher().replica) == 1
        job = _wait(client, client.post("/ingest", json={"source": "incoming-mem"}).json()["id"])
        assert job["state"] == "done" and job["summary"]["indexed"] == 1, job
        hits = client.get("/search", params={"q": "a clock", "k": 10}).json()["hits"]
        assert video_id_for(str(new)) in {h["video_id"] for h in hits} and len(svc.searcher().replica) == 2
    finally:
        svc.close()


def test_frame_mirror_service_sees_ingested_videos(tmp_path_factory, tiny_clip, library):
    """``--frame-mirror``: rescoring reads the mirror; a video ingested through the service is read from the
    store at once (its write tells the mirror) and from the mirror after the next sync."""
    frames = str(tmp_path_factory.mktemp("svc_mirror_frames"))
    svc, client, new, p = _one_video_service(
        tmp_path_factory, tiny_clip, library, "mirror", frame_mirror=frames, mirror_sync_s=0
    )
    try:
        first = client.get("/search", params={"q": "a clock", "k": 10}).json()["hits"]
        assert [h["video_id"] for h in first] == [video_id_for(p)]
        mirror = svc.searcher().frames
        assert len(mirror) == 1 and mirror.hits == 1 and mirror.misses == 0
        job = _wait(client, client.post("/ingest", json={"source": "incoming-mirror"}).json()["id"])
        assert job["state"] == "done" and job["summary"]["indexed"] == 1, job
        hits = client.get("/search", params={"q": "a clock", "k": 10}).json()["hits"]
        assert video_id_for(str(new)) in {h["video_id"] for h in hits}
        assert mirror.misses >= 1 and video_id_for(str(new)) not in mirror._where  # read from the store
        assert mirror.sync().added == 1
        again = client.get("/search", params={"q": "a clock", "k": 10}).json()["hits"]
        assert [(h["video_id"], h["score"]) for h in again] == [(h["video_id"], h["score"]) for h in hits]
    finally:
        svc.close()


def test_second_ingest_is_409_and_failures_are_reported(lib, lib_app, library):
    root, _ = library
    svc = lib_app.state.service
    gate = threading.Event()
    svc.ingest.index_fn = partial(direct_index, gate=gate)
    first = lib.post("/ingest", json={"source": "videos"})
    assert first.status_code == 202
    try:
        busy = lib.post("/ingest", json={"source": "videos"})
        assert busy.status_code == 409 and first.json()["id"] in busy.json()["detail"]
    finally:
        gate.set()
    assert _wait(lib, first.json()["id"])["state"] == "done"

    def boom(cfg, store):
        raise RuntimeError("disk on fire")

    svc.ingest.index_fn = boom
    job = _wait(lib, lib.post("/ingest", json={"source": "videos"}).json()["id"])
    assert job["state"] == "failed" and "disk on fire" in job["error"]
    svc.ingest.index_fn = direct_index
    r = lib.post("/ingest", json={"source": "videos"})
    assert r.status_code == 202  # not stuck busy
    assert _wait(lib, r.json()["id"])["state"] == "done"
    assert lib.get("/ingest/" + "0" * 32).status_code == 404


def test_ingest_refuses_sources_outside_its_roots(lib, api, library, tmp_path):
    root, clips = library
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.mp4").write_bytes(clips["bars"].read_bytes())
    (root / "incoming" / "escape").symlink_to(outside, target_is_directory=True)
    listing = root / "incoming" / "list.txt"
    listing.write_text(f"{outside / 'x.mp4'}\n")
    try:
        for source in (
            "/etc",
            "/",
            "..",
            "../..",
            str(root / ".." / ".."),
            str(outside),
            str(outside / "*.mp4"),
            "/*",
            "incoming/escape",
            str(listing),
            "/etc/passwd",
        ):
            r = lib.post("/ingest", json={"source": source})
            assert r.status_code == 403, (source, r.status_code, r.text)
    finally:
        (root / "incoming" / "escape").unlink()
        listing.unlink()
    for body, code in [
        ({"source": "does-not-exist"}, 400),
        ({"source": "videos", "sampling": "fps:0"}, 422),
        ({"source": "videos", "sampling": "every:2"}, 422),
        ({"source": ""}, 422),
        ({"source": "videos", "max_failures": -1}, 422),
        ({"source": "videos", "extra": 1}, 422),
        ({"source": "vid\u0000eos"}, 422),
    ]:
        r = lib.post("/ingest", json=body)
        assert r.status_code == code, (body, r.status_code, r.text)
    assert api.post("/ingest", json={"source": "/tmp"}).status_code == 403  # no --ingest-root: ingest is off


def test_empty_store_serves_503_until_ingested(tmp_path, tiny_clip, library):
    root, clips = library
    app = create_app(str(tmp_path / "empty.db"), ingest_roots=[root], index_fn=direct_index, limits=Limits(max_k=5))
    try:
        c = TestClient(app)
        assert c.get("/search", params={"q": "bars"}).status_code == 503
        assert c.post("/rerank", json={"query": "x", "candidates": [{"id": "a", "score": 1}]}).status_code == 503
        assert c.get("/info").json()["videos"] == 0 and c.get("/videos/abc").status_code == 404
        assert c.get("/search", params={"q": "bars", "k": 6}).status_code == 422  # limits are configurable
        job = _wait(c, c.post("/ingest", json={"source": str(clips["bars"])}).json()["id"])
        assert job["state"] == "done" and job["options"]["model"] == "tiny-random"
        hits = c.get("/search", params={"q": "bars"}).json()["hits"]
        assert [h["video_id"] for h in hits] == [video_id_for(str(clips["bars"]))]
    finally:
        app.state.service.close()


@pytest.mark.slow
@pytest.mark.ray
def test_ingest_runs_the_real_ray_job(tmp_path, media):
    lib = tmp_path / "lib"
    lib.mkdir()
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=25:duration=2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(lib / "a.mp4"),
    )
    app = create_app(str(tmp_path / "ray.db"), ingest_roots=[lib])
    try:
        c = TestClient(app)
        r = c.post("/ingest", json={"source": str(lib)})
        assert r.status_code == 202
        job = _wait(c, r.json()["id"], timeout=400)
        assert job["state"] == "done", job
        assert job["summary"]["indexed"] == 1 and job["summary"]["frames"] == 2
        assert [h["name"] for h in c.get("/search", params={"q": "test pattern"}).json()["hits"]] == ["a.mp4"]
    finally:
        app.state.service.close()


# -- the search parameters: one declaration (retrieval/params.py PARAMS) ------------------------------------
def test_get_and_post_search_parameters_are_the_declared_ones(api):
    """GET /search's query parameters, POST /search's and POST /rerank's bodies carry PARAMS' defaults and
    ranges (the service's Limits cap k and depth); what they refuse, SearchParams.validate() refuses too."""
    from vidseek.operators.aggregate import list_aggregators
    from vidseek.retrieval.params import AGGREGATIONS, PARAMS, SearchParams

    assert set(AGGREGATIONS) == {*list_aggregators(), "learned"}
    schema = api.get("/openapi.json").json()
    get = {p["name"]: p["schema"] for p in schema["paths"]["/search"]["get"]["parameters"]}
    post = schema["components"]["schemas"]["SearchBody"]["properties"]
    rerank = schema["components"]["schemas"]["RerankBody"]["properties"]
    caps = {"k": Limits().max_k, "depth": Limits().max_depth}
    for name, spec in PARAMS.items():
        want = {
            "default": spec.default,
            "minimum": spec.ge,
            "maximum": spec.le if spec.le is not None else caps.get(name),
        }
        for where in (get, post, rerank) if name in rerank else (get, post):
            assert {key: where[name].get(key) for key in want} == want, (name, where[name])
            assert (where[name].get("enum") and tuple(where[name]["enum"])) == (spec.choices or None)
    lo, hi = PARAMS["tau"].ge, PARAMS["tau"].le
    for tau, ok in ((lo, True), (hi, True), (lo * 0.9, False), (hi * 1.1, False)):
        codes = {
            api.get("/search", params={"q": QUERY, "k": 2, "tau": tau}).status_code,
            api.post("/search", json={"q": QUERY, "k": 2, "tau": tau}).status_code,
        }
        assert codes == ({200} if ok else {422}), (tau, codes)
        try:
            SearchParams(tau=tau).validate()
            assert ok, tau
        except ValueError:
            assert not ok, tau


# -- page, health, schema -------------------------------------------------------------------------------
def test_page_health_and_schema(api):
    page = api.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="search-form"' in page.text and "/static/app.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert api.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert api.get("/static/nope.js").status_code == 404
    assert api.get("/healthz").json() == {"status": "ok"}
    info = api.get("/info").json()
    assert info["videos"] == 6 and info["frames"] == 120 and info["model"]["model"] == "tiny-random"
    assert info["thinning"] is None  # every sampled frame is a row
    paths = api.get("/openapi.json").json()["paths"]
    assert {
        "/search",
        "/rerank",
        "/videos/{video_id}",
        "/videos/{video_id}/thumbnail",
        "/videos/{video_id}/file",
        "/healthz",
        "/ingest",
        "/ingest/{job_id}",
    } <= set(paths)


def test_concurrent_searches_agree(api):
    expected = api.get("/search", params={"q": QUERY, "k": 6}).json()["hits"]
    results, errors = [], []

    def worker():
        try:
            for _ in range(5):
                results.append(api.get("/search", params={"q": QUERY, "k": 6}).json()["hits"])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 20
    assert all([h["video_id"] for h in r][:2] == [h["video_id"] for h in expected][:2] for r in results)


# -- property-based fuzz of the whole API from its OpenAPI schema -----------------------------------------
FUZZ_EXAMPLES = int(os.environ.get("VIDSEEK_FUZZ_EXAMPLES", "20"))


def test_openapi_fuzz_finds_no_server_errors(lib_app, library, record_property):
    """schemathesis generates requests for every operation from the OpenAPI schema — valid inputs and
    schema-violating ones — and sends them in-process (ASGI). No answer may be a 5xx, every answer must be
    JSON or the operation's media type. ``VIDSEEK_FUZZ_EXAMPLES`` sets the examples per operation and mode."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    _, clips = library
    real = vid(clips, "bars")
    svc = lib_app.state.service

    def no_indexing(cfg, store):
        raise RuntimeError("fuzz: ingest jobs do not index")

    before, svc.ingest.index_fn = svc.ingest.index_fn, no_indexing
    schema = schemathesis.openapi.from_asgi("/openapi.json", lib_app, headers={"Authorization": f"Bearer {TOKEN}"})
    sent: dict = {"n": 0, "status": {}, "operations": 0}
    failures: list[str] = []

    def check(case) -> None:
        if "video_id" in (case.path_parameters or {}) and sent["n"] % 4 == 0:
            case.path_parameters["video_id"] = real  # fuzz the query of a real video too
        response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
        sent["n"] += 1
        sent["status"][response.status_code] = sent["status"].get(response.status_code, 0) + 1
        ctype = response.headers.get("content-type", "")
        ctype = (ctype[0] if isinstance(ctype, list) else ctype).split(";")[0]
        if response.status_code >= 500 or ctype not in ("application/json", "image/jpeg", "video/mp4", "video/webm"):
            failures.append(
                f"{case.method} {case.formatted_path} query={case.query} body={str(case.body)[:200]} "
                f"-> {response.status_code} {ctype} {response.text[:300]}"
            )
            raise AssertionError(failures[-1])

    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            sent["operations"] += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                run = settings(
                    max_examples=FUZZ_EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    suppress_health_check=list(HealthCheck),
                )(given(case=operation.as_strategy(generation_mode=mode))(check))
                try:
                    run()
                except AssertionError:
                    pass  # recorded in failures; go on with the other operations
                except Exception as e:  # noqa: BLE001 — e.g. a mode that cannot generate for this operation
                    if "Unsatisfiable" not in type(e).__name__:
                        raise
    finally:
        svc.ingest.index_fn = before
        deadline = time.monotonic() + 10
        while svc.ingest._current is not None and time.monotonic() < deadline:
            time.sleep(0.02)
    record_property("fuzz_requests", sent["n"])
    summary = (
        f"schemathesis: {sent['n']} generated requests over {sent['operations']} operations; "
        f"by status {dict(sorted(sent['status'].items()))}"
    )
    print("\n" + summary)
    if os.environ.get("VIDSEEK_ARTIFACTS"):
        out = Path(os.environ["VIDSEEK_ARTIFACTS"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "fuzz.json").write_text(
            json.dumps(
                {
                    "requests": sent["n"],
                    "operations": sent["operations"],
                    "by_status": sent["status"],
                    "failures": failures,
                }
            )
        )
    assert not failures, failures[:5]
    assert sent["n"] >= 100, summary


def test_a_hung_decode_answers_504_and_searches_keep_answering(tmp_path, tiny_clip, library, monkeypatch):
    """Thumbnail decodes that stall (as on a hung network mount) time out with 504; they never hold the
    request threads, and once every decoder permit is held by a hung decode new ones time out too, at once
    rather than piling up, while searches keep answering."""
    _, clips = library
    app = create_app(str(tmp_path / "hang.db"), clip=tiny_clip, limits=Limits(decode_timeout_s=1.0, max_decodes=2))
    stalled, entered = threading.Event(), []

    def stalled_read(path, t, width):
        entered.append(t)
        stalled.wait(60)  # blocks like a read that never returns
        raise RuntimeError("released")

    try:
        store = app.state.service.store
        store.ensure_model(tiny_clip.stamp())
        p = str(clips["redblue"])
        index_video(store, tiny_clip, p, video_id_for(p))
        v = video_id_for(p)
        monkeypatch.setattr("vidseek.apps.service.app.frame_jpeg", stalled_read)
        client = TestClient(app)
        answers: list[tuple[int, str, float]] = []

        def thumb(t: float) -> None:
            start = time.monotonic()
            r = client.get(f"/videos/{v}/thumbnail", params={"t": t})
            answers.append((r.status_code, r.json()["detail"], time.monotonic() - start))

        threads = [threading.Thread(target=thumb, args=(0.1 * i,)) for i in range(4)]
        for th in threads:
            th.start()
        searched = []
        while any(th.is_alive() for th in threads):
            start = time.monotonic()
            r = client.post("/search", json={"q": "red", "k": 5})
            searched.append((r.status_code, time.monotonic() - start))
        for th in threads:
            th.join()
        assert len(entered) == 2  # two decoders hung; the other requests never started a third
        assert sorted(a[0] for a in answers) == [504] * 4
        assert sum("timeout after 1 s waiting for a free decoder" in a[1] for a in answers) == 2
        assert all("the file may be on a slow or stalled disk" in a[1] and a[2] < 10 for a in answers), answers
        assert searched and all(code == 200 for code, _ in searched), searched
        monkeypatch.undo()  # the disk is back: the next thumbnail decodes (a free permit comes back with it)
        stalled.set()
        time.sleep(0.2)
        assert client.get(f"/videos/{v}/thumbnail", params={"t": 0.5}).status_code == 200
    finally:
        stalled.set()
        app.state.service.close()
