"""The index job on a real local Ray: counts, resume, replace, prune, metadata, model stamp, search after."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from vidseek.operators.models import ModelEntry, register_model
from vidseek.pipeline.index_job import IndexConfig, JobError, run_index
from vidseek.pipeline.job_ray import init_local_ray
from vidseek.pipeline.sources import video_id_for
from vidseek.retrieval.search import Searcher
from vidseek.store.filters import parse_user_filter
from vidseek.store.video_store import ModelMismatchError, StoreError, VideoStore

pytestmark = pytest.mark.ray


def make_clip(path: Path, seconds: float, pattern: str = "testsrc") -> Path:
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"{pattern}=duration={seconds}:size=96x72:rate=10",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
    )
    return path


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for the module's in-process jobs, in a temp dir of its own (short: Ray's socket paths must
    fit 107 bytes): another test process's Ray (pytest-xdist runs two) never shares its session files."""
    import ray

    temp_dir = tempfile.mkdtemp(prefix="vs-ray-")
    init_local_ray(temp_dir, num_cpus=2)  # the product's start: a stalled start is started again
    yield
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def library(tmp_path) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    make_clip(lib / "a.mp4", 2)
    make_clip(lib / "b.mp4", 3, "smptebars")
    make_clip(lib / "c with space.mp4", 4, "rgbtestsrc")
    (lib / "broken.mp4").write_bytes(os.urandom(3000))
    return lib


@pytest.fixture(params=["lite", pytest.param("server", marks=[pytest.mark.server, pytest.mark.slow])])
def target(request, tmp_path) -> tuple[str, str]:
    """(store URI, collection prefix): a Milvus Lite file, or a prefix of its own on the module's real server."""
    if request.param == "server":
        return request.getfixturevalue("milvus"), "t" + hashlib.sha1(request.node.name.encode()).hexdigest()[:10]
    return str(tmp_path / "s.db"), "vidseek"


def store_rows(uri: str, prefix: str = "vidseek") -> tuple[dict[str, dict], dict[str, int], int]:
    """Video rows by id, frame rows per video (counted by distinct key), and total frame rows."""
    with VideoStore(uri, prefix) as s:
        videos = {r["video_id"]: r for r in s.video_records()}
        pks = [r["pk"] for r in s.iter_query(s.frames, 'video_id != ""', ["pk", "video_id"])]
    per_video: dict[str, int] = {}
    for pk in set(pks):
        vid = pk.split(":")[0]
        per_video[vid] = per_video.get(vid, 0) + 1
    return videos, per_video, len(pks)


def assert_exactly_once(uri: str, after_crash: bool = False, prefix: str = "vidseek") -> dict[str, dict]:
    """Every finished video has exactly its frames, once. After a crash, frames of unfinished videos may
    remain (no video row marks them done; the next run deletes them first); otherwise there are none."""
    videos, per_video, total = store_rows(uri, prefix)
    assert total == sum(per_video.values()), "duplicate frame keys"
    ok = {v: r for v, r in videos.items() if r["status"] == "ok"}
    for vid, r in ok.items():
        assert per_video.get(vid, 0) == r["n_frames"] > 0, r["path"]
    orphans = set(per_video) - set(ok)
    if after_crash:
        assert not orphans & set(videos), "frames of a video recorded as failed"
    else:
        assert not orphans, f"frames without a finished video: {orphans}"
    return videos


def test_index_resume_replace_prune(ray_local, library, target):
    uri, prefix = target
    cfg = IndexConfig(source=str(library), store=uri, prefix=prefix, progress=False)

    first = run_index(cfg)
    assert (first.indexed, first.failed, first.skipped) == (3, 1, 0)
    assert first.frames == 2 + 3 + 4  # fps:1 -> one frame per second
    assert first.errors[0]["path"].endswith("broken.mp4") and first.errors[0]["stage"] == "decode"
    videos = assert_exactly_once(uri, prefix=prefix)
    assert len(videos) == 4
    failed = [r for r in videos.values() if r["status"] == "failed"]
    assert len(failed) == 1 and "broken.mp4" in failed[0]["error"]
    assert {r["decoder"] for r in videos.values() if r["status"] == "ok"} == {"pyav"}  # auto, for H.264

    again = run_index(cfg)
    assert (again.indexed, again.failed, again.skipped) == (0, 0, 4)
    assert store_rows(uri, prefix)[2] == first.frames

    old_id = video_id_for(library / "a.mp4")
    make_clip(library / "a.mp4", 5)  # changed content: new identity, old rows replaced
    changed = run_index(dataclasses.replace(cfg, decoder="decord"))  # the decoder option reaches the workers
    assert (changed.indexed, changed.replaced, changed.skipped) == (1, 1, 3)
    videos = assert_exactly_once(uri, prefix=prefix)
    assert old_id not in videos
    assert videos[video_id_for(library / "a.mp4")]["n_frames"] == 5
    assert videos[video_id_for(library / "a.mp4")]["decoder"] == "decord"

    gone = video_id_for(library / "b.mp4")
    (library / "b.mp4").unlink()
    kept = run_index(cfg)  # without --prune the rows of a deleted file stay
    assert kept.pruned == 0 and gone in store_rows(uri, prefix)[0]
    pruned = run_index(dataclasses.replace(cfg, prune=True))
    assert pruned.pruned == 1
    videos = assert_exactly_once(uri, prefix=prefix)
    assert gone not in videos and len(videos) == 3


def test_failure_budget_then_retry_failed(ray_local, library, target):
    # Every good video outlives a 1 ms decode limit (a timeout each) until the failure budget stops the job.
    uri, prefix = target
    cfg = IndexConfig(source=str(library), store=uri, prefix=prefix, progress=False)
    strict = dataclasses.replace(cfg, decode_timeout_s=0.001, decode_timeout_per_s=0.0, max_failures=1)
    stopped = run_index(strict)
    assert stopped.stopped_early and (stopped.indexed, stopped.failed) == (0, 2), stopped.render()
    assert "stopped early" in stopped.render()
    assert_exactly_once(uri, after_crash=True, prefix=prefix)  # a stopped job may leave unfinished frames
    timeouts = [e for e in stopped.errors if "timeout after" in e["reason"]]
    assert timeouts and all(e in timeouts or e["path"].endswith("broken.mp4") for e in stopped.errors)

    # a server's writer actor may have recorded a failure or two more than the driver read before it stopped
    recorded = store_rows(uri, prefix)[0]
    assert len(recorded) >= 2 and all(r["status"] == "failed" for r in recorded.values())

    rest = run_index(cfg)  # the failed videos stay failed: a failure is a result, not a gap
    assert (rest.skipped, rest.indexed + rest.failed) == (len(recorded), 4 - len(recorded))
    retried = run_index(dataclasses.replace(cfg, retry_failed=True))
    assert (retried.skipped, retried.indexed + retried.failed) == (rest.indexed, len(recorded) + rest.failed)
    videos = assert_exactly_once(uri, prefix=prefix)
    assert sorted(r["status"] for r in videos.values()) == ["failed", "ok", "ok", "ok"]
    (failed,) = [r for r in videos.values() if r["status"] == "failed"]
    assert failed["path"].endswith("broken.mp4") and "timeout" not in failed["error"]  # its own error now


def test_metadata_filter_and_search(ray_local, library, tmp_path):
    uri = str(tmp_path / "m.db")
    listing = tmp_path / "list.jsonl"
    listing.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"path": str(library / "a.mp4"), "lang": "en", "year": 2020},
                {"path": str(library / "b.mp4"), "lang": "de", "year": 2021},
                {"path": "lib/c with space.mp4", "lang": "de", "year": 2019},  # relative to the list file
            ]
        )
    )
    summary = run_index(IndexConfig(source=str(listing), store=uri, progress=False, sampling="uniform:4"))
    assert summary.indexed == 3 and summary.frames == 12

    searcher = Searcher(uri)
    try:
        hits = searcher.search("colour bars", k=10)
        assert sorted(Path(h.path).name for h in hits) == ["a.mp4", "b.mp4", "c with space.mp4"]
        durations = {"a.mp4": 2, "b.mp4": 3, "c with space.mp4": 4}
        for h in hits:
            assert 0 <= h.moment[0] <= h.best_t <= h.moment[1] <= durations[Path(h.path).name] + 1e-3
        de = searcher.search("colour bars", k=10, filter=parse_user_filter("lang=de"))
        assert sorted(Path(h.path).name for h in de) == ["b.mp4", "c with space.mp4"]
        recent = searcher.search("x", k=10, filter=parse_user_filter("year>=2020"), aggregation="mean")
        assert {h.metadata["year"] for h in recent} == {2020, 2021}
        assert len(searcher.search("x", k=2, rerank=False, aggregation="max")) == 2
    finally:
        searcher.store.close()


def test_store_refuses_another_model(ray_local, library, tmp_path):
    uri = str(tmp_path / "x.db")
    run_index(IndexConfig(source=str(library / "a.mp4"), store=uri, progress=False))
    register_model(ModelEntry(name="tiny-random-seed1", arch="tiny-random", seed=1))
    with pytest.raises(ModelMismatchError, match="another embedding model"):
        run_index(IndexConfig(source=str(library), store=uri, model="tiny-random-seed1", progress=False))
    videos, _, total = store_rows(uri)
    assert len(videos) == 1 and total == 2  # nothing written by the refused job


def test_the_clip_actor_refuses_a_store_whose_model_now_builds_another_space(ray_local, library, tmp_path, tiny_clip):
    # The driver takes the stamp of a store that names the same model and weights without building the
    # model (pipeline/index_job.py job_stamp); the CLIP actor, which builds it, must refuse one whose
    # embedding space differs (as after an open_clip upgrade that changed the preprocessing).
    uri = str(tmp_path / "x.db")
    stamp = tiny_clip.stamp()
    drifted = {**stamp, "preprocess": {**stamp["preprocess"], "mean": [0.5, 0.5, 0.5]}}
    with VideoStore(uri) as st:
        st.ensure_model(drifted)
    with pytest.raises(JobError, match="builds another embedding space.*mean"):
        run_index(IndexConfig(source=str(library), store=uri, progress=False))
    videos, _, total = store_rows(uri)
    assert (len(videos), total) == (0, 0)  # refused before a frame was written


def test_a_driver_indexing_into_its_models_store_never_imports_torch(ray_local, library, tmp_path):
    # What a job's driver pays before Ray starts (docs/architecture.md "A job's fixed costs"): with the store already
    # holding this model, neither the plan nor naming the stages imports torch or open_clip (~7 CPU-s).
    uri = str(tmp_path / "x.db")
    run_index(IndexConfig(source=str(library / "a.mp4"), store=uri, progress=False))
    child = (
        "import json, sys\n"
        "from vidseek.pipeline.index_job import IndexConfig, run_index\n"
        "from vidseek.pipeline.stages.encode import EncodeStage\n"
        "from vidseek.pipeline.stages.write import WriteStage\n"
        f"s = run_index(IndexConfig(source={str(library / 'a.mp4')!r}, store={uri!r}, progress=False))\n"
        "print(json.dumps([s.skipped, [m for m in ('torch', 'open_clip', 'torchvision') if m in sys.modules]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1]) == [1, []]


def test_learned_head_at_index_time_and_added_later(ray_local, library, tmp_path, tiny_clip):
    from vidseek.operators.heads import head_id, new_head, save_head

    head_path = tmp_path / "head.pt"
    save_head(head_path, new_head("seqTransf", tiny_clip.model), {"n_frames": 12}, tiny_clip.stamp())
    hid = head_id(head_path)

    with_head = str(tmp_path / "h.db")
    s = run_index(IndexConfig(source=str(library), store=with_head, progress=False, head=str(head_path)))
    assert s.indexed == 3
    with VideoStore(with_head) as st:
        rows = st.get_videos(
            [r["video_id"] for r in st.video_records('status == "ok"')], ["learned_head", "learned_vec"]
        )
    assert {r["learned_head"] for r in rows.values()} == {hid}
    assert all(abs(np.linalg.norm(r["learned_vec"]) - 1) < 1e-4 for r in rows.values())

    later = str(tmp_path / "l.db")
    run_index(IndexConfig(source=str(library), store=later, progress=False))
    added = run_index(IndexConfig(source=str(library), store=later, progress=False, head=str(head_path)))
    assert (added.indexed, added.reaggregated) == (0, 3)  # from stored frames: nothing decoded again
    with VideoStore(later) as st:
        again = st.get_videos(list(rows), ["learned_vec"])
    for vid, r in rows.items():  # same frames, same head -> same learned vectors either way
        assert np.allclose(again[vid]["learned_vec"], r["learned_vec"], atol=1e-5)
    searcher = Searcher(later, clip=tiny_clip)
    try:
        hits = searcher.search("colour bars", aggregation="learned", k=5)
        assert len(hits) == 3
    finally:
        searcher.store.close()
    with pytest.raises(ValueError, match="not found"):
        run_index(IndexConfig(source=str(library), store=later, head="/nope.pt"))


def test_merge_similar_at_index_time_and_the_next_job_inherits_it(ray_local, tmp_path, tiny_clip):
    """--merge-similar writes merged rows (a still clip becomes one row) standing for every sampled frame; the
    video vectors are pooled from all frames; the store records the threshold and the next job uses it."""
    from vidseek.operators.thinning import expand_merged
    from vidseek.operators.video_vectors import mean_pool_np

    lib = tmp_path / "lib"
    lib.mkdir()
    make_clip(lib / "still.mp4", 6, "color")  # black, still
    make_clip(lib / "moving.mp4", 6)
    uri = str(tmp_path / "thin.db")
    s = run_index(IndexConfig(source=str(lib), store=uri, progress=False, merge_similar=0.99))
    assert (s.indexed, s.merge_similar) == (2, 0.99) and "merged into one row at cosine ≥ 0.99" in s.render()
    with VideoStore(uri) as st:
        assert st.thinning() == {"threshold": 0.99}
        recs = {Path(r["path"]).name: r for r in st.video_records('status == "ok"', ["video_id", "path", "n_frames"])}
        got = st.get_videos([r["video_id"] for r in recs.values()], ["video_id", "mean_vec"])
        frames = st.frames_of([r["video_id"] for r in recs.values()])
    still = frames[recs["still.mp4"]["video_id"]]
    assert len(still.idx) == 1 and still.merged.tolist() == [recs["still.mp4"]["n_frames"]] == [6]
    assert (still.t_start[0], still.t_end[0]) == pytest.approx((0.0, 6.0), abs=0.15)
    for r in recs.values():
        f = frames[r["video_id"]]
        assert f.merged.sum() == r["n_frames"]  # no sampled frame lost
        expanded = expand_merged(f.vectors, f.merged)
        assert np.allclose(mean_pool_np(expanded), got[r["video_id"]]["mean_vec"], atol=1e-3)

    make_clip(lib / "still2.mp4", 4, "smptebars")  # still too
    again = run_index(IndexConfig(source=str(lib), store=uri, progress=False))
    assert (again.indexed, again.skipped, again.merge_similar) == (1, 2, 0.99)
    with VideoStore(uri) as st:
        vid = video_id_for(str((lib / "still2.mp4").absolute()))
        assert st.frames_of([vid])[vid].merged.tolist() == [4]
    with pytest.raises(StoreError, match="thinned at 0.99, not 0.5"):
        run_index(IndexConfig(source=str(lib), store=uri, progress=False, merge_similar=0.5))


def test_a_video_that_outlives_its_decode_limit_is_a_timeout_record(ray_local, tmp_path):
    """The job goes on: the slow file is an error record, the others (decoded after it) are indexed."""
    lib = tmp_path / "lib"
    lib.mkdir()
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=duration=30:size=1920x1080:rate=30",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            str(lib / "a_heavy.mp4"),
        ],
        check=True,
    )  # ~900 1080p frames to decode
    for i in range(3):
        make_clip(lib / f"b{i}.mp4", 2)
    uri = str(tmp_path / "t.db")
    summary = run_index(
        IndexConfig(source=str(lib), store=uri, progress=False, decode_timeout_s=1.5, decode_timeout_per_s=0.0)
    )
    assert (summary.indexed, summary.failed) == (3, 1), summary.render()
    (err,) = summary.errors
    assert err["stage"] == "decode" and err["reason"].startswith(f"{lib / 'a_heavy.mp4'}: timeout after 2 s")
    assert "[decode] timeout after 2 s" in summary.render()
    assert_exactly_once(uri)


@pytest.mark.parametrize("decoder", ["auto", "pyav", "decord"])
def test_every_valid_edge_file_indexes_with_every_decoder(ray_local, tmp_path_factory, decoder):
    """tests/edge_corpus.py through the whole job: 0 failed, and the rows the sampling contract asks for."""
    from conftest import ffmpeg
    from edge_corpus import CORPUS, build_edge_corpus, expected_row_count

    corpus = build_edge_corpus(tmp_path_factory.mktemp("edge"), ffmpeg)
    uri = str(tmp_path_factory.mktemp("edge-store") / "s.db")
    summary = run_index(
        IndexConfig(source=str(next(iter(corpus.values())).parent), store=uri, decoder=decoder, progress=False)
    )
    assert (summary.indexed, summary.failed) == (len(CORPUS), 0), summary.render()
    videos = assert_exactly_once(uri)
    by_name = {Path(r["path"]).name: r for r in videos.values()}
    assert {n: r["n_frames"] for n, r in by_name.items()} == {n: expected_row_count(p) for n, p in corpus.items()}


def test_the_stage_specs_are_typed_values_that_cross_ray_whole(tmp_path):
    """The planner's specs keep the decoder's arguments and the decode limit as objects, and pickle as they are
    (Ray sends them to the stages): no flattened tuple to rebuild on the other side."""
    import pickle

    from vidseek.operators.isolated_decode import DecodeLimit, DecoderArgs
    from vidseek.pipeline.faults import FaultInjector
    from vidseek.pipeline.index_job import JobInputs, StoreTerms, stage_specs
    from vidseek.pipeline.resources import StageResources
    from vidseek.pipeline.specs import JobHooks

    cfg = IndexConfig(source="x", store=str(tmp_path / "s.db"), decoder="pyav", decode_timeout_s=5, max_failures=2)
    inputs = JobInputs("fps:1", DecodeLimit(5, 2), [], {}, None)
    stamp = {"model": "tiny-random", "preprocess": {"size": 32}}
    hooks = JobHooks(FaultInjector("after_frames:1", None), str(tmp_path / "where"))
    specs = stage_specs(cfg, inputs, StoreTerms(stamp, True, None, 0.9), 3, hooks)
    assert specs.decode.decoder == DecoderArgs(
        {"size": 32}, "fps:1", 32, {"backend": "pyav", "skip_loop_filter": False}
    )
    assert specs.decode.limit == DecodeLimit(5, 2) and specs.max_failures == 2
    assert specs.encode.expected_stamp == stamp and specs.write.expected == 3 and specs.write.merge_similar == 0.9
    assert {specs.decode.placement_dir, specs.encode.placement_dir, specs.write.placement_dir} == {hooks.placement_dir}
    back = pickle.loads(pickle.dumps(specs))
    assert back.decode == specs.decode and isinstance(back.decode.limit, DecodeLimit)
    assert back.write.hooks.point == "after_frames" and back.write.hooks.remaining == 1
    cpu = specs.encode.placed(StageResources("encode", num_cpus=0.1, batch_size=64))
    assert (cpu.device, cpu.batch_size, cpu.encoder_args()["batch_size"]) == ("cpu", 64, 64)
    assert stage_specs(cfg, inputs, StoreTerms(stamp, False, None, None), 3).write.hooks is None  # no hooks: none


def test_job_hooks_are_read_from_the_environment_only_by_an_entry_point():
    from vidseek.pipeline.specs import JobHooks

    hooks = JobHooks.from_env({"VIDSEEK_FAULT": "after_videos:2:pause=3", "VIDSEEK_PLACEMENT_DIR": "/tmp/p"})
    assert (hooks.writer.point, hooks.writer.remaining, hooks.writer.pause_s) == ("after_videos", 2, 3.0)
    assert hooks.writer.driver_pid == os.getpid() and hooks.placement_dir == "/tmp/p"
    assert JobHooks.from_env({}) == JobHooks()
    with pytest.raises(ValueError, match="VIDSEEK_FAULT='nowhere:1'"):
        JobHooks.from_env({"VIDSEEK_FAULT": "nowhere:1"})
    root = Path(__file__).resolve().parents[1] / "pipeline"
    for module in [root / "index_job.py", root / "writer.py", *(root / "stages").glob("*.py")]:
        text = module.read_text()  # the job and its stages take their hooks; they read none
        assert not any(name in text for name in ("from_env", "VIDSEEK_FAULT", "PLACEMENT_DIR")), module
