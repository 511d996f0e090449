"""The index job over s3:// on a real local Ray and a real S3 endpoint (moto's server): rows, resume with no
object read, a changed object re-indexed, prune, search hits with the URL, a missing object as its error, a
secret in the storage options found nowhere (logs, Ray's session files, error records, the store's files),
and a two-node cluster whose workers find the credentials in their environment."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from pathlib import Path

import pytest
from s3_server import S3Server
from test_index_cluster import index_on_cluster, two_node_cluster  # noqa: F401 — a fixture
from test_index_job import assert_exactly_once, make_clip

from vidseek.operators.remote_source import StorageOptions
from vidseek.pipeline.index_job import IndexConfig, run_index
from vidseek.pipeline.job_ray import init_local_ray
from vidseek.pipeline.placement import nodes_by_stage, read_placement
from vidseek.retrieval.search import Searcher, SearchParams

pytestmark = [pytest.mark.s3, pytest.mark.ray, pytest.mark.slow]

BUCKET = "library"
SECRET = "Sup3r-s3cret-storage-value"


@pytest.fixture(scope="module")
def ray_dir():
    """A local Ray of this module's own, in its own temp dir (its session logs are searched for the secret)."""
    import ray

    temp_dir = tempfile.mkdtemp(prefix="vs-ray-")
    init_local_ray(temp_dir, num_cpus=2)  # the product's start: a stalled start is started again
    yield Path(temp_dir)
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def s3(tmp_path):
    server = S3Server(tmp_path)
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def _upload(s3: S3Server, tmp_path: Path, key: str, seconds: float, pattern: str = "testsrc") -> None:
    clip = make_clip(tmp_path / f"{pattern}-{seconds}.mp4", seconds, pattern)
    s3.client().upload_file(str(clip), BUCKET, key)


def _files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink() and needle in p.read_bytes():
                hits.append(str(p))
        except OSError:
            continue
    return hits


def test_index_from_s3_resume_change_prune_and_search(ray_dir, s3, tmp_path, tiny_clip):
    _upload(s3, tmp_path, "v/a.mp4", 2)
    _upload(s3, tmp_path, "v/b.mp4", 3, "smptebars")
    s3.client().put_object(Bucket=BUCKET, Key="v/broken.mp4", Body=b"\x00" * 3000)
    store = str(tmp_path / "s.db")
    cfg = IndexConfig(
        source=f"s3://{BUCKET}/v/", store=store, progress=False, storage_options=StorageOptions(s3.options())
    )

    first = run_index(cfg)
    assert (first.indexed, first.failed, first.skipped) == (2, 1, 0) and first.frames == 2 + 3
    videos = assert_exactly_once(store)
    assert sorted(r["path"] for r in videos.values()) == [
        f"s3://{BUCKET}/v/{k}" for k in ("a.mp4", "b.mp4", "broken.mp4")
    ]
    assert {r["decoder"] for r in videos.values() if r["status"] == "ok"} == {"pyav"}
    hits = Searcher(store, clip=tiny_clip).search("a test pattern", SearchParams(k=5))
    assert {h.path for h in hits} == {f"s3://{BUCKET}/v/a.mp4", f"s3://{BUCKET}/v/b.mp4"}  # hits carry the URL

    reads_before = len(s3.object_reads("/v/"))
    assert reads_before > 0  # the first run did read the objects, and the log shows those reads
    again = run_index(cfg)
    assert (again.indexed, again.failed, again.skipped) == (0, 0, 3)
    assert len(s3.object_reads("/v/")) == reads_before  # resumed from the listing: no GET of any object

    old = {r["path"]: vid for vid, r in videos.items()}
    _upload(s3, tmp_path, "v/a.mp4", 4, "rgbtestsrc")  # changed content: new ETag, new id, old rows replaced
    changed = run_index(cfg)
    assert (changed.indexed, changed.replaced, changed.skipped) == (1, 1, 2)
    videos = assert_exactly_once(store)
    assert old[f"s3://{BUCKET}/v/a.mp4"] not in videos
    assert [r["n_frames"] for r in videos.values() if r["path"].endswith("/a.mp4")] == [4]

    s3.client().delete_object(Bucket=BUCKET, Key="v/b.mp4")
    pruned = run_index(dataclasses.replace(cfg, prune=True))
    assert pruned.pruned == 1
    assert sorted(r["path"] for r in assert_exactly_once(store).values()) == [
        f"s3://{BUCKET}/v/a.mp4",
        f"s3://{BUCKET}/v/broken.mp4",
    ]


def test_a_missing_object_is_its_error_and_the_secret_is_nowhere(ray_dir, s3, tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG, logger="vidseek")
    _upload(s3, tmp_path, "w/ok.mp4", 2)
    listing = tmp_path / "list.txt"
    listing.write_text(f"s3://{BUCKET}/w/ok.mp4\ns3://{BUCKET}/w/missing.mp4\n")
    store = tmp_path / "secret-test.db"
    options = StorageOptions(s3.options(secret=SECRET))  # moto takes any secret
    cfg = IndexConfig(source=str(listing), store=str(store), progress=False, storage_options=options)
    assert SECRET not in repr(cfg)

    summary = run_index(cfg)
    assert (summary.indexed, summary.failed) == (1, 1)
    assert "object not found" in summary.errors[0]["reason"] and summary.errors[0]["path"].endswith("missing.mp4")
    videos = assert_exactly_once(str(store))
    failed = [r for r in videos.values() if r["status"] == "failed"]
    assert len(failed) == 1 and "missing.mp4: object not found" in failed[0]["error"]

    out, err = capfd.readouterr()
    assert SECRET not in caplog.text + out + err + summary.render() + repr(summary.as_dict())
    assert SECRET not in repr(videos)
    assert not _files_containing(store, SECRET.encode())  # the store's files, byte for byte
    assert not _files_containing(ray_dir, SECRET.encode())  # Ray's session logs: workers' stdout and stderr


@pytest.fixture
def aws_env(s3, monkeypatch):
    """Credentials and endpoint where S3 clients look by themselves (the environment), set before the
    cluster's nodes start so that their workers inherit them as a real deployment's would."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return s3


def test_a_two_node_cluster_indexes_s3_with_credentials_from_the_environment(
    aws_env,
    two_node_cluster,  # noqa: F811 — the fixture imported above
    tmp_path,
):
    for i in range(4):
        _upload(aws_env, tmp_path, f"c/clip{i}.mp4", 2 + i % 2)
    aws_env.client().put_object(Bucket=BUCKET, Key="c/bad.mp4", Body=b"\x00" * 100)
    uri = str(tmp_path / "c.db")
    summary = index_on_cluster(f"s3://{BUCKET}/c/", uri, two_node_cluster, tmp_path / "placement")
    assert (summary["indexed"], summary["failed"]) == (4, 1)
    placement = nodes_by_stage(read_placement(tmp_path / "placement"))
    assert len(set().union(*placement.values())) == 2, placement  # stages ran on both nodes
    videos = assert_exactly_once(uri)
    assert all(r["path"].startswith(f"s3://{BUCKET}/c/") for r in videos.values()) and len(videos) == 5
