"""The service over videos indexed by s3:// URL (moto's server): thumbnails, the file by Range, and the object
checked against its indexed ETag on each request (409 once changed, 410 once gone)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from s3_server import serve_bucket
from service_lib import index_video

from vidseek.apps.service import create_app
from vidseek.apps.service.media import frame_jpeg
from vidseek.pipeline.sources import video_id_for

pytestmark = pytest.mark.s3

TOKEN = "remote-service-test-token-0123456789"
BUCKET = "served"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    yield from serve_bucket(tmp_path_factory, "moto-svc", BUCKET)


@pytest.fixture(scope="module")
def served(tmp_path_factory, s3, tiny_clip, h264_mp4):
    """An app over a store of three objects (keys a, changes, goes), each a copy of ``h264_mp4``."""
    for key in ("a.mp4", "changes.mp4", "goes.mp4"):
        s3.client().upload_file(str(h264_mp4), BUCKET, key)
    uri = str(tmp_path_factory.mktemp("svc-s3") / "s.db")
    app = create_app(uri, token=TOKEN, clip=tiny_clip, storage_options=s3.options())
    store = app.state.service.store
    store.ensure_model(tiny_clip.stamp())
    ids = {}
    for key in ("a.mp4", "changes.mp4", "goes.mp4"):
        url = f"s3://{BUCKET}/{key}"
        ids[key] = video_id_for(url, s3.options())
        assert index_video(store, tiny_clip, url, ids[key], storage_options=s3.options())["status"] == "ok"
    yield TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}), ids
    app.state.service.close()


def test_thumbnail_of_an_object_is_the_local_files_frame(served, h264_mp4):
    client, ids = served
    r = client.get(f"/videos/{ids['a.mp4']}/thumbnail", params={"t": 1.0})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content == frame_jpeg(str(h264_mp4), 1.0, 320)
    row = client.get(f"/videos/{ids['a.mp4']}").json()
    assert row["path"] == f"s3://{BUCKET}/a.mp4" and row["name"] == "a.mp4" and row["file"]


def test_the_object_is_served_by_range(served, h264_mp4, s3):
    client, ids = served
    data = h264_mp4.read_bytes()
    url = f"/videos/{ids['a.mp4']}/file"
    full = client.get(url)
    assert full.status_code == 200 and full.content == data
    assert full.headers["content-type"] == "video/mp4" and full.headers["accept-ranges"] == "bytes"
    etag = s3.client().head_object(Bucket=BUCKET, Key="a.mp4")["ETag"]
    assert full.headers["etag"] == etag
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = client.get(url, headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == data[-50:]
    assert client.get(url, headers={"Range": f"bytes={len(data) + 5}-"}).status_code == 416


def test_a_changed_object_is_409_and_a_deleted_one_410(served, s3, h264_mp4):
    client, ids = served
    changed = h264_mp4.read_bytes()[:-4] + b"\x00\x00\x00\x00"  # same size, new ETag
    s3.client().put_object(Bucket=BUCKET, Key="changes.mp4", Body=changed)
    for path in ("file", "thumbnail?t=0.5"):
        r = client.get(f"/videos/{ids['changes.mp4']}/{path}")
        assert r.status_code == 409 and "changed since it was indexed" in r.json()["detail"], path
    s3.client().delete_object(Bucket=BUCKET, Key="goes.mp4")
    for path in ("file", "thumbnail?t=0.5"):
        r = client.get(f"/videos/{ids['goes.mp4']}/{path}")
        assert r.status_code == 410 and "object is gone" in r.json()["detail"], path
    assert client.get(f"/videos/{ids['a.mp4']}/file").status_code == 200  # the others still serve
