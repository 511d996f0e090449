"""Index throughput from an S3 endpoint beside local files: the same clips, the same job, one run.

Generates ``--videos`` clips (default 12 × 20 s, 320×240 H.264, 25 fps, x264 veryfast defaults), uploads them
to moto's S3 server on 127.0.0.1 (tests/s3_server.py, started as bench/s3_byte_counter.py, which records the
body bytes of every GET it answers), and runs the index job as ``vidseek index`` does (``run_index``, local
Ray, a fresh Milvus Lite store per run) over three sources:

  local        the folder, ``--decoder auto`` (what a user gets; for H.264 that is PyAV first, docs/decoding.md)
  local-pyav   the folder with ``--decoder pyav``, the one decoder a URL source has, whatever the codec (for
               H.264 the same job as local: the two then show the spread between identical runs)
  s3           ``s3://bench/clips/`` with the endpoint in ``--storage-options``

``--rounds`` of all three, each round in the reverse order of the one before (ABBA), so that drift on a
shared machine hits every source. An untimed warm-up job over one clip first pays the driver's cold imports.
Prints per source: videos/s and video-seconds/s over the job's wall time and over its streaming time (first
batch → last video written: without Ray's start and stop), the s3 ÷ local ratios, and the object bytes
the S3 runs read against the objects' total size (range reads: ``fps:1`` decodes every packet).

moto is a local emulator on loopback, with no network latency: the ratio measures vidseek's remote read
path (listing, HEAD, fsspec range reads, PyAV over a stream), not a real S3.

    python bench/remote_throughput.py                                  # 12 × 20 s, 2 rounds
    python bench/remote_throughput.py --videos 2 --seconds 2 --rounds 1 --json   # smoke size
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests"))  # the S3 server helper
from media import make_library  # noqa: E402
from s3_byte_counter import object_gets  # noqa: E402
from s3_server import S3Server  # noqa: E402
from timings import StreamTimer  # noqa: E402

from vidseek.pipeline.index_job import IndexConfig, run_index  # noqa: E402
from vidseek.store.video_store import VideoStore  # noqa: E402

BUCKET, PREFIX = "bench", "clips"
SOURCES = ("local", "local-pyav", "s3")


def upload(server: S3Server, lib: Path) -> int:
    """Every clip of ``lib`` to s3://BUCKET/PREFIX/; returns their total size in bytes."""
    client = server.client()
    client.create_bucket(Bucket=BUCKET)
    total = 0
    for clip in sorted(lib.glob("*.mp4")):
        client.upload_file(str(clip), BUCKET, f"{PREFIX}/{clip.name}")
        total += clip.stat().st_size
    return total


def job_config(source: str, lib: Path, server: S3Server, store: str, args: argparse.Namespace) -> IndexConfig:
    common = {"store": store, "model": args.model, "sampling": args.sampling, "progress": False}
    if source == "s3":  # the endpoint and keys as `--storage-options` gives them: JSON text
        return IndexConfig(source=f"s3://{BUCKET}/{PREFIX}/", storage_options=json.dumps(server.options()), **common)
    return IndexConfig(source=str(lib), decoder="pyav" if source == "local-pyav" else "auto", **common)


def index_once(cfg: IndexConfig) -> dict:
    timer = StreamTimer()
    t = time.perf_counter()
    s = run_index(cfg, observer=timer)
    wall = time.perf_counter() - t
    with VideoStore(cfg.store) as store:
        decoders: dict[str, int] = {}
        for row in store.video_records():
            decoders[row["decoder"]] = decoders.get(row["decoder"], 0) + 1
    return {
        "indexed": s.indexed,
        "failed": s.failed,
        "errors": s.errors[:3],
        "frames": s.frames,
        "video_s": round(s.video_seconds, 2),
        "wall_s": round(wall, 2),
        "stream_s": round(timer.stream_s, 2),
        "steady_video_s_per_s": round(timer.steady_video_seconds_per_s, 2),  # NaN: a second half too short to time
        "decoders": decoders,
        "phases": {k: round(v, 2) for k, v in s.phases.items()},
    }


def run_rounds(lib: Path, server: S3Server, bytes_log: Path, tmp: Path, args: argparse.Namespace) -> list[dict]:
    runs = []
    for r in range(args.rounds):
        for source in SOURCES if r % 2 == 0 else SOURCES[::-1]:
            before = object_gets(bytes_log, BUCKET)
            run = index_once(job_config(source, lib, server, str(tmp / f"{source}-{r}.db"), args))
            gets = object_gets(bytes_log, BUCKET)[len(before) :]
            run.update(source=source, round=r, object_gets=len(gets), object_get_bytes=sum(g["bytes"] for g in gets))
            if run["indexed"] != args.videos:
                raise SystemExit(f"{source} run {r} indexed {run['indexed']} of {args.videos} videos: {run['errors']}")
            print(f"[{source} round {r}] {run['wall_s']} s wall, {run['stream_s']} s streaming", file=sys.stderr)
            runs.append(run)
    return runs


def per_source(runs: list[dict]) -> dict[str, dict]:
    """Rates over all of a source's runs: their videos and video seconds over their summed times."""
    out = {}
    for source in SOURCES:
        mine = [r for r in runs if r["source"] == source]
        videos, video_s = sum(r["indexed"] for r in mine), sum(r["video_s"] for r in mine)
        wall, stream = sum(r["wall_s"] for r in mine), sum(r["stream_s"] for r in mine)
        decoders: dict[str, int] = {}
        for r in mine:
            for name, n in r["decoders"].items():
                decoders[name] = decoders.get(name, 0) + n
        out[source] = {
            "runs": len(mine),
            "indexed": videos // len(mine),
            "failed": sum(r["failed"] for r in mine),
            "videos_per_s": round(videos / wall, 3),
            "video_s_per_s": round(video_s / wall, 2),
            "stream_videos_per_s": round(videos / stream, 3),
            "stream_video_s_per_s": round(video_s / stream, 2),
            "wall_s_per_run": [r["wall_s"] for r in mine],
            "stream_s_per_run": [r["stream_s"] for r in mine],
            "decoders": decoders,
        }
    return out


def ratios(sources: dict[str, dict], base: str) -> dict[str, float]:
    s3, other = sources["s3"], sources[base]
    return {
        "wall": round(s3["video_s_per_s"] / other["video_s_per_s"], 3),
        "stream": round(s3["stream_video_s_per_s"] / other["stream_video_s_per_s"], 3),
    }


def bytes_read(runs: list[dict], object_bytes: int) -> dict:
    s3 = [r for r in runs if r["source"] == "s3"]
    read = sum(r["object_get_bytes"] for r in s3) / len(s3)
    return {
        "object_bytes": object_bytes,
        "read_bytes_per_run": round(read),
        "ratio": round(read / object_bytes, 3),
        "object_gets_per_run": sum(r["object_gets"] for r in s3) / len(s3),
        "local_runs_object_gets": sum(r["object_gets"] for r in runs if r["source"] != "s3"),
    }


def warm_up(lib: Path, tmp: Path, args: argparse.Namespace) -> None:
    """One clip into a throwaway store: the driver's first model build and imports, paid untimed."""
    one = tmp / "warm-up"
    one.mkdir()
    shutil.copy(sorted(lib.glob("*.mp4"))[0], one)
    run_index(IndexConfig(source=str(one), store=str(tmp / "warm-up.db"), model=args.model, progress=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of all sources, ABBA order")
    ap.add_argument("--model", default="tiny-random")
    ap.add_argument("--sampling", default="fps:1")
    ap.add_argument("--no-warm-up", action="store_true")
    ap.add_argument("--media", default=os.environ.get("VIDSEEK_BENCH_MEDIA", "/tmp/vidseek-bench-media"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    lib = make_library(Path(args.media), args.size, args.videos, args.seconds, fps=25)
    tmp = Path(tempfile.mkdtemp(prefix="vidseek-remote-throughput-"))
    bytes_log = tmp / "moto-bytes.log"
    server = S3Server(tmp, server=[str(BENCH / "s3_byte_counter.py"), "--bytes-log", str(bytes_log)])
    try:
        object_bytes = upload(server, lib)
        if not args.no_warm_up:
            warm_up(lib, tmp, args)
        runs = run_rounds(lib, server, bytes_log, tmp, args)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    sources = per_source(runs)
    out = {
        "library": f"{args.videos} × {args.seconds} s {args.size} H.264",
        "videos": args.videos,
        "model": args.model,
        "sampling": args.sampling,
        "cores": os.cpu_count(),
        "rounds": args.rounds,
        "sources": sources,
        "s3_vs_local": ratios(sources, "local"),
        "s3_vs_local_pyav": ratios(sources, "local-pyav"),
        "s3_bytes": bytes_read(runs, object_bytes),
        "runs": runs,
    }
    print(json.dumps(out) if args.json else render(out))


def render(out: dict) -> str:
    lines = [
        f"library {out['library']}, model {out['model']}, {out['sampling']}, {out['cores']} cores, "
        f"{out['rounds']} rounds (ABBA)",
        "| source | runs | videos | videos/s (wall) | video s/s (wall) | videos/s (stream) | video s/s (stream) "
        "| wall s per run | decoders |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, r in out["sources"].items():
        lines.append(
            f"| {name} | {r['runs']} | {r['indexed']} | {r['videos_per_s']} | {r['video_s_per_s']} "
            f"| {r['stream_videos_per_s']} | {r['stream_video_s_per_s']} | {r['wall_s_per_run']} | {r['decoders']} |"
        )
    b = out["s3_bytes"]
    lines += [
        f"s3 ÷ local (video s/s): wall {out['s3_vs_local']['wall']}×, stream {out['s3_vs_local']['stream']}×",
        f"s3 ÷ local-pyav (video s/s): wall {out['s3_vs_local_pyav']['wall']}×, "
        f"stream {out['s3_vs_local_pyav']['stream']}×",
        f"bytes read from S3 per run: {b['read_bytes_per_run']} of {b['object_bytes']} object bytes "
        f"(ratio {b['ratio']}) in {b['object_gets_per_run']:g} object GETs",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
