"""URL sources without Ray: listing and identity from a real S3 endpoint (moto's server), decoding over range
reads, and each fault (missing, denied, reset mid-read, stalled) as that video's error record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from range_server import RangeServer
from s3_server import FaultProxy, serve_bucket

from vidseek.operators import remote_source
from vidseek.operators.decode import DecodeError, VideoDecoder
from vidseek.operators.isolated_decode import DecodeLimit, IsolatedDecoder
from vidseek.operators.remote_source import RemoteError, StorageOptions, describe, object_info, open_object
from vidseek.operators.rows import FrameRows, VideoEnd
from vidseek.pipeline.index_config import IndexConfig
from vidseek.pipeline.index_job import job_inputs
from vidseek.pipeline.sources import SourceError, discover, object_video_id

pytestmark = pytest.mark.s3

BUCKET = "vids"
SECRET = "s3cr3t-Value-never-shown"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    yield from serve_bucket(tmp_path_factory, "moto", BUCKET)


@pytest.fixture(scope="module")
def uploaded(s3, h264_mp4, vp9_webm) -> dict[str, Path]:
    c = s3.client()
    files = {"lib/a.mp4": h264_mp4, "lib/sub/b.webm": vp9_webm}
    for key, path in files.items():
        c.upload_file(str(path), BUCKET, key)
    c.put_object(Bucket=BUCKET, Key="lib/notes.txt", Body=b"not a video")
    return files


@pytest.fixture
def http(tmp_path, h264_mp4):
    (tmp_path / "a.mp4").write_bytes(h264_mp4.read_bytes())
    server = RangeServer(tmp_path)
    yield server
    server.stop()


def _rows(decoder, url: str, video_id: str = "v") -> tuple[list[FrameRows], VideoEnd]:
    items = list(decoder.iter_video(url, video_id))
    return [x for x in items if isinstance(x, FrameRows)], items[-1]


def test_a_prefix_and_a_glob_list_videos_with_ids_from_the_listing_and_read_no_object(s3, uploaded):
    before = len(s3.requests())
    found = discover(f"s3://{BUCKET}/lib/", s3.options())
    assert [v.path for v in found] == [f"s3://{BUCKET}/lib/a.mp4", f"s3://{BUCKET}/lib/sub/b.webm"]  # not notes.txt
    globbed = discover(f"s3://{BUCKET}/lib/*.mp4", s3.options())
    assert [v.path for v in globbed] == [f"s3://{BUCKET}/lib/a.mp4"]
    assert globbed[0].video_id == found[0].video_id
    info = object_info(found[0].path, s3.options())
    assert info.size == uploaded["lib/a.mp4"].stat().st_size and info.version.startswith("ETag=")
    assert found[0].video_id == object_video_id(info, found[0].path)
    served = s3.requests()[before:]
    assert served and not [r for r in served if r[0] == "GET" and "list-type" not in r[1]]  # listings, HEADs only


def test_a_list_file_of_urls_keeps_its_metadata_and_a_missing_object_is_listed_for_its_error(s3, uploaded, tmp_path):
    listing = tmp_path / "list.jsonl"
    listing.write_text(
        f'{{"path": "s3://{BUCKET}/lib/a.mp4", "title": "A"}}\n{{"path": "s3://{BUCKET}/lib/gone.mp4"}}\n'
    )
    found = discover(listing, s3.options())
    assert [v.path for v in found] == [f"s3://{BUCKET}/lib/a.mp4", f"s3://{BUCKET}/lib/gone.mp4"]
    assert found[0].metadata == {"title": "A"}
    assert found[1].video_id == object_video_id(None, found[1].path)


def test_an_empty_prefix_and_a_missing_object_are_clear_errors(s3, uploaded):
    with pytest.raises(SourceError, match="no video objects there"):
        discover(f"s3://{BUCKET}/nothing-here/", s3.options())
    with pytest.raises(SourceError, match="gone.mp4: object not found"):
        discover(f"s3://{BUCKET}/lib/gone.mp4", s3.options())


def test_a_changed_object_gets_a_new_id(s3, uploaded, h264_mp4, tmp_path):
    c = s3.client()
    c.upload_file(str(h264_mp4), BUCKET, "changing/x.mp4")
    first = discover(f"s3://{BUCKET}/changing/x.mp4", s3.options())[0].video_id
    assert discover(f"s3://{BUCKET}/changing/x.mp4", s3.options())[0].video_id == first  # stable
    c.put_object(Bucket=BUCKET, Key="changing/x.mp4", Body=h264_mp4.read_bytes()[:-10] + b"0123456789")
    assert discover(f"s3://{BUCKET}/changing/x.mp4", s3.options())[0].video_id != first  # same size, new ETag


def test_decoding_from_s3_gives_the_local_files_frames(s3, uploaded, pre_cfg):
    local = VideoDecoder(pre_cfg, "fps:2", backend="pyav")
    remote = VideoDecoder(pre_cfg, "fps:2", storage_options=s3.options())  # auto: PyAV for a URL
    want, want_end = _rows(local, str(uploaded["lib/a.mp4"]))
    got, end = _rows(remote, f"s3://{BUCKET}/lib/a.mp4")
    assert end.ok and end.decoder == "pyav" and end.n_frames == want_end.n_frames > 0
    np.testing.assert_array_equal(np.concatenate([r.payload for r in got]), np.concatenate([r.payload for r in want]))
    np.testing.assert_array_equal(np.concatenate([r.t for r in got]), np.concatenate([r.t for r in want]))


def test_decord_refuses_a_url_and_the_job_refuses_it_before_starting(s3, uploaded, pre_cfg):
    with pytest.raises(DecodeError, match="decord reads local files only"):
        list(
            VideoDecoder(pre_cfg, "fps:1", backend="decord", storage_options=s3.options()).decode(
                f"s3://{BUCKET}/lib/a.mp4"
            )
        )
    cfg = IndexConfig(source=f"s3://{BUCKET}/lib/", decoder="decord", storage_options=StorageOptions(s3.options()))
    with pytest.raises(ValueError, match="--decoder decord reads local files only"):
        job_inputs(cfg)


def test_storage_options_show_no_value_and_bad_json_is_one_line():
    opts = StorageOptions.parse(f'{{"key": "AKIA123", "secret": "{SECRET}", "client_kwargs": {{"x": "{SECRET}2"}}}}')
    assert SECRET not in repr(opts) and SECRET not in str(opts) and "AKIA123" not in repr(opts)
    assert dict(opts)["secret"] == SECRET
    assert SECRET not in describe(PermissionError(f"denied for {SECRET}2 and {SECRET}"), opts)
    assert StorageOptions.parse(dict(opts)).fingerprint() == opts.fingerprint() != StorageOptions().fingerprint()
    with pytest.raises(ValueError, match="not valid JSON"):
        StorageOptions.parse("{key: 1}")
    with pytest.raises(ValueError, match="must be a JSON object"):
        StorageOptions.parse("[1]")
    with pytest.raises(RemoteError, match="password in the URL"):
        object_info("https://user:pw@example.invalid/a.mp4")


def test_a_secret_in_storage_options_never_reaches_an_error_record(s3, uploaded, pre_cfg):
    opts = s3.options(secret=SECRET)  # moto takes any secret
    dec = IsolatedDecoder(
        pre_cfg.as_dict(), "fps:1", limit=DecodeLimit(30.0, 0.0), options={"storage_options": StorageOptions(opts)}
    )
    try:
        _, missing = _rows(dec, f"s3://{BUCKET}/lib/gone.mp4")
        frames, ok = _rows(dec, f"s3://{BUCKET}/lib/a.mp4")
    finally:
        dec.close()
    assert missing.status == "failed" and "object not found" in missing.error
    assert ok.ok and frames
    assert SECRET not in repr(missing) and SECRET not in repr(dec.args)


def test_decoding_over_http_reads_ranges_with_the_same_frames(http, pre_cfg, tmp_path):
    got, end = _rows(VideoDecoder(pre_cfg, "fps:2"), f"{http.url}/a.mp4")
    want, _ = _rows(VideoDecoder(pre_cfg, "fps:2", backend="pyav"), str(tmp_path / "a.mp4"))
    assert end.ok
    np.testing.assert_array_equal(np.concatenate([r.payload for r in got]), np.concatenate([r.payload for r in want]))
    assert http.gets["a.mp4"] >= 1 and http.sent("a.mp4") > 0


def test_the_job_decoder_reads_a_small_object_once_across_its_probes_and_the_decode(http, pre_cfg):
    """Its child probes, the decoder probes and decodes: three opens, whose blocks are fetched once
    (operators/kept_objects.py); before, each open fetched the header and moov blocks again (2.2x)."""
    size = (http.root / "a.mp4").stat().st_size
    dec = IsolatedDecoder(pre_cfg.as_dict(), "fps:2")
    try:
        frames, end = _rows(dec, f"{http.url}/a.mp4")
    finally:
        dec.close()
    assert end.ok and frames
    assert http.sent("a.mp4") == size, (http.sent("a.mp4"), size)
    assert http.gets["a.mp4"] == -(-size // remote_source.BLOCK_SIZE)


def test_a_changed_object_is_read_again_not_from_the_file_kept_for_it(http):
    url = f"{http.url}/a.mp4"
    old = (http.root / "a.mp4").read_bytes()
    with open_object(url) as f:
        assert f.read() == old
    gets = http.gets["a.mp4"]
    with open_object(url) as f:  # the same version: its kept blocks, no GET
        assert f.read() == old
    assert http.gets["a.mp4"] == gets
    new = bytes(255 - b for b in old)  # the same size, other bytes (a new ETag)
    (http.root / "a.mp4").write_bytes(new)
    with open_object(url) as f:
        assert f.read() == new
    assert http.gets["a.mp4"] > gets


@pytest.mark.parametrize(
    "fault, reason",
    [
        ("404", "object not found"),
        ("403", "access denied"),
        (("reset", 3000), "reading the object failed"),
        (("stall", 30.0), "timeout after 4 s"),
    ],
)
def test_each_fault_is_that_videos_error_within_the_limit_and_the_next_video_decodes(http, pre_cfg, fault, reason):
    (http.root / "b.mp4").write_bytes((http.root / "a.mp4").read_bytes())
    http.faults["a.mp4"] = fault
    dec = IsolatedDecoder(pre_cfg.as_dict(), "fps:1", limit=DecodeLimit(4.0, 0.0))
    try:
        frames, end = _rows(dec, f"{http.url}/a.mp4")
        _, after = _rows(dec, f"{http.url}/b.mp4")
    finally:
        dec.close()
    assert http.fired["a.mp4"] >= 1  # the fault really happened
    assert end.status == "failed" and reason in end.error and end.error.startswith(f"{http.url}/a.mp4")
    assert after.ok  # the worker goes on with the next video


def test_remote_bytes_bench_smoke():
    out = subprocess.run(
        [sys.executable, "bench/remote_bytes.py", "--minutes", "1", "--plans", "uniform:4"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    assert "uniform:4: read" in out and "ratio" in out


def test_the_cli_takes_storage_options_from_the_line_or_the_config_file_and_never_echoes_them(s3, uploaded, tmp_path):
    from test_cli_config import vidseek

    store = str(tmp_path / "s.db")
    bad = vidseek("index", f"s3://{BUCKET}/lib/", "--store", store, "--storage-options", "[1]", cwd=tmp_path)
    assert bad.returncode != 0 and "must be a JSON object" in bad.stderr and "Traceback" not in bad.stderr
    options = json.dumps(s3.options(secret=SECRET))
    (tmp_path / "job.toml").write_text(f"[index]\nsource = 's3://{BUCKET}/empty/'\nstorage-options = '{options}'\n")
    ran = vidseek("index", "--config", "job.toml", "--store", store, cwd=tmp_path)
    # the options reached the listing (moto answered: an empty prefix, not a connection error)
    assert ran.returncode != 0 and "no video objects there" in ran.stderr
    assert any("prefix=empty" in target for _, target, _ in s3.requests())
    assert SECRET not in ran.stdout + ran.stderr


@pytest.fixture
def proxy(s3):
    p = FaultProxy(s3.port)
    yield p
    p.stop()


@pytest.mark.parametrize(
    "fault, reason, limit_s",
    [
        ("denied", "access denied", 4.0),
        ("stall", "timeout after 4 s", 4.0),
        (("reset", 4000), "reading the object failed", 60.0),
    ],
)
def test_an_s3_endpoint_that_denies_stalls_or_resets_mid_read_is_that_videos_error(
    s3, uploaded, proxy, pre_cfg, fault, reason, limit_s
):
    # one botocore attempt per s3fs try (s3fs still tries a read 5 times, ~1 s of backoff in all)
    opts = StorageOptions(s3.options(endpoint_url=proxy.endpoint, config_kwargs={"retries": {"max_attempts": 1}}))
    # a reset is an error well inside the limit (s3fs's five tries), never the limit's timeout
    limit = DecodeLimit(limit_s, 0.0)
    dec = IsolatedDecoder(pre_cfg.as_dict(), "fps:1", limit=limit, options={"storage_options": opts})
    try:
        proxy.mode = fault
        _, end = _rows(dec, f"s3://{BUCKET}/lib/a.mp4")
        proxy.mode = None
        _, after = _rows(dec, f"s3://{BUCKET}/lib/a.mp4")
    finally:
        dec.close()
    assert proxy.fired >= 1  # the fault really happened
    assert end.status == "failed" and reason in end.error, end.error
    assert after.ok  # and the next video decodes through the same proxy


def test_an_http_url_with_a_query_is_one_object_not_a_glob(http):
    found = discover(f"{http.url}/a.mp4?download=1")
    assert [v.path for v in found] == [f"{http.url}/a.mp4?download=1"]
    assert http.gets["a.mp4"] == 0  # its id came from a HEAD request


def test_an_object_changed_after_the_listing_fails_rather_than_take_the_old_id(s3, uploaded, h264_mp4, pre_cfg):
    url = f"s3://{BUCKET}/late/x.mp4"
    s3.client().upload_file(str(h264_mp4), BUCKET, "late/x.mp4")
    listed = discover(url, s3.options())[0]
    s3.client().put_object(Bucket=BUCKET, Key="late/x.mp4", Body=h264_mp4.read_bytes()[:-3] + b"abc")
    dec = VideoDecoder(pre_cfg, "fps:1", storage_options=s3.options(), verify_objects=True)
    frames, end = _rows(dec, url, listed.video_id)
    assert not frames and end.status == "failed" and "changed since the job listed it" in end.error
    _, now = _rows(dec, url, discover(url, s3.options())[0].video_id)
    assert now.ok
