"""Search latency at library scale: p50/p99 per query, text encoding included.

Builds a Milvus Lite store of synthetic vectors (``--videos`` × ``--frames`` frame vectors, clustered per
video so ANN has structure), then times ``Searcher.search`` with the real ViT-B-32 text tower (random init:
speed does not depend on weight values) for each configuration and three ways of reaching the vectors:

  store, cold   every call goes to Milvus Lite, frame cache off (a one-shot `vidseek search`)
  store, warm   Milvus Lite for the first stage, candidates' frames from a warm frame cache
  in-memory     ``Searcher(in_memory=True)``: the store's replica in process memory (a long-lived service);
                its one-off load time is printed

With ``--server URI``, the same store is also built on a Milvus server and timed the same way (Lite and the
server in one run). Each store row has p50/p99 with the text tower and p50 without it (queries encoded
beforehand): the difference is the text tower's share. Prints one table; ratios come from the same run.

    python bench/search_latency.py                       # 10k videos, 300k frame vectors (minutes to build)
    python bench/search_latency.py --videos 200 --frames 10 --queries 5   # smoke size (CI)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vidseek.operators.aggregate import mean_pool  # noqa: E402
from vidseek.operators.encode import encode_texts, load_clip  # noqa: E402
from vidseek.operators.frame_table import FrameTable  # noqa: E402
from vidseek.retrieval.frame_cache import FrameCache  # noqa: E402
from vidseek.retrieval.query_cache import QueryCache  # noqa: E402
from vidseek.retrieval.row_path import RowPathSearcher  # noqa: E402
from vidseek.retrieval.search import Searcher, SearchParams  # noqa: E402
from vidseek.store.video_store import VideoStore, frame_rows  # noqa: E402


def build_store(uri: str, clip, n_videos: int, n_frames: int, prefix: str = "vidseek", seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    store = VideoStore(uri, prefix)
    store.ensure_model(clip.stamp())
    d = store.dim
    t0 = time.perf_counter()
    for lo in range(0, n_videos, 500):
        rows, frames = [], []
        for v in range(lo, min(lo + 500, n_videos)):
            centre = rng.standard_normal(d)
            vecs = (centre + 0.5 * rng.standard_normal((n_frames, d))).astype(np.float32)  # [T, D]
            t = np.arange(n_frames, dtype=np.float32)
            vid = f"v{v:06d}"
            frames.append(frame_rows(vid, FrameTable.of(np.arange(n_frames), t + 0.5, t, t + 1, vecs)))
            rows.append(
                {
                    "video_id": vid,
                    "path": f"/lib/{vid}.mp4",
                    "duration": float(n_frames),
                    "n_frames": n_frames,
                    "mean_vec": mean_pool(torch.from_numpy(vecs)[None])[0].numpy(),
                }
            )
        store.client.insert(store.frames, [r for f in frames for r in f])  # one insert per 500 videos
        store.upsert_videos(rows)
    store.client.flush(store.frames)  # seal the segments: the server builds their indexes
    store.client.flush(store.videos)
    wait_for_indexes(store)
    build_s = time.perf_counter() - t0
    store.close()
    return build_s


def wait_for_indexes(store: VideoStore, timeout_s: float = 1800) -> None:
    """Until every row is indexed: a server builds indexes in the background after a flush (300k × 512-d
    HNSW took ~5 min here), and searches timed before that run brute force beside the build."""
    deadline = time.monotonic() + timeout_s
    for collection, field in ((store.frames, "vec"), (store.videos, "mean_vec")):
        while time.monotonic() < deadline:
            info = store.client.describe_index(collection, field)
            if int(info.get("indexed_rows", 0)) >= int(info.get("total_rows", 0)):
                break
            time.sleep(2)


CONFIGS = {
    "mean, no rerank": SearchParams(aggregation="mean", rerank=False),
    "query-weighted + rerank@100": SearchParams(aggregation="query-weighted", rerank=True, depth=100),
    "max + rerank@100": SearchParams(aggregation="max", rerank=True, depth=100),
}


def _percentiles(lat: list[float]) -> dict:
    return {"p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))}


def time_store(searcher: Searcher, label: str, queries: list[str], n_videos: int) -> dict:
    """p50/p99 per configuration: with the text tower (``search``), without it (``search_vectors`` of
    encoded queries), cold (frame cache off) and warm (a cache that has seen the queries)."""
    qvecs = searcher.encode_queries(queries)  # [Q, D]
    out = {}
    for name, params in CONFIGS.items():
        for mode, cache in (("cold", 0), ("warm", 2_000_000)):
            searcher.frames = FrameCache(searcher.store.frames_of, cache)
            searcher.search(queries[0], params)
            if mode == "warm":
                for q in queries:
                    searcher.search(q, params)
            lat, lat_vec = [], []
            for q, v in zip(queries, qvecs):
                t = time.perf_counter()
                hits = searcher.search(q, params)
                lat.append((time.perf_counter() - t) * 1000)
                assert len(hits) == min(params.k, n_videos)
                t = time.perf_counter()
                searcher.search_vectors(v[None], params)
                lat_vec.append((time.perf_counter() - t) * 1000)
            out[f"{name} [{label}, {mode}]"] = {**_percentiles(lat), "no_text_p50_ms": _percentiles(lat_vec)["p50_ms"]}
    return out


def time_paths(store: VideoStore, clip, label: str, queries: list[str], n_videos: int) -> dict:
    """The fast path beside the row path it replaced (retrieval/row_path.py), cold, same store, same run,
    the two interleaved query by query so that drift on a noisy machine hits both alike."""
    no_cache = dict(clip=clip, warn=False, query_cache=QueryCache(0))  # the text tower runs on every search
    fast = Searcher(store, cache_vectors=0, **no_cache)
    row = RowPathSearcher(store, **no_cache)
    out = {}
    for name in ("query-weighted + rerank@100", "mean, no rerank"):
        params = CONFIGS[name]
        lat: dict[str, list[float]] = {"fast": [], "row": []}
        for s in (fast, row):
            s.search(queries[0], params)
        for i, q in enumerate(queries):
            for path, s in (("fast", fast), ("row", row)) if i % 2 else (("row", row), ("fast", fast)):
                t = time.perf_counter()
                assert len(s.search(q, params)) == min(params.k, n_videos)
                lat[path].append((time.perf_counter() - t) * 1000)
        for path in ("fast", "row"):
            out[f"{name} [{label}, {path} path, cold]"] = _percentiles(lat[path])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=10_000)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument(
        "--server",
        default=None,
        help="also a Milvus server at this URI (http://127.0.0.1:19530): built and timed beside Milvus Lite, "
        "in collections of its own that are dropped afterwards",
    )
    ap.add_argument("--no-lite", action="store_true", help="with --server: time the server only (Lite takes minutes)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.no_lite and not args.server:
        ap.error("--no-lite needs --server")
    torch.manual_seed(0)
    clip = load_clip(args.model, "none", device="cpu")
    tmp = Path(tempfile.mkdtemp(prefix="vidseek-bench-"))
    stores = {} if args.no_lite else {"Lite": (str(tmp / "bench.db"), "vidseek")}
    if args.server:
        stores["server"] = (args.server, f"bench{int(time.time())}")
    queries = [f"query number {i} about a scene with things" for i in range(args.queries)]
    results, build = {}, {}
    try:
        t = time.perf_counter()  # the text tower alone, on the same machine and run
        for q in queries[:5]:
            encode_texts(clip, [q])
        text_ms = (time.perf_counter() - t) / 5 * 1000
        for label, (uri, prefix) in stores.items():
            build[label] = build_store(uri, clip, args.videos, args.frames, prefix)
            searcher = Searcher(VideoStore(uri, prefix), clip=clip, cache_vectors=0, query_cache=QueryCache(0))
            results.update(time_paths(searcher.store, clip, label, queries, args.videos))
            results.update(time_store(searcher, label, queries, args.videos))
            if label == next(iter(stores)):  # the in-memory replica, loaded from the first store
                t = time.perf_counter()
                replica = Searcher(searcher.store, clip=clip, in_memory=True, query_cache=QueryCache(0))
                load_s = time.perf_counter() - t
                for name, params in CONFIGS.items():
                    replica.search(queries[0], params)
                    lat = []
                    for q in queries:
                        t = time.perf_counter()
                        replica.search(q, params)
                        lat.append((time.perf_counter() - t) * 1000)
                    results[f"{name} [in-memory]"] = _percentiles(lat)
            if label == "server":
                for name in searcher.store.client.list_collections():
                    if name.startswith(prefix + "_"):
                        searcher.store.client.drop_collection(name)
            searcher.store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "videos": args.videos,
        "frame_vectors": args.videos * args.frames,
        "model": args.model,
        "build_s": {k: round(v, 1) for k, v in build.items()},
        "replica_load_s": round(load_s, 1),
        "text_encode_ms": round(text_ms, 1),
        "configs": results,
    }
    if args.json:
        print(json.dumps(out))
        return
    built = ", ".join(f"{k} {v:.0f} s" for k, v in build.items())
    print(
        f"store: {args.videos} videos, {args.videos * args.frames} frame vectors (inserted and indexed: {built}); "
        f"{args.model} text encode {text_ms:.1f} ms/query; in-memory replica loaded in {load_s:.1f} s"
    )
    first = next(iter(stores))
    base = results[f"mean, no rerank [{first}, cold]"]["p50_ms"]
    print(f"{'configuration':56s} {'p50 ms':>8s} {'p99 ms':>8s} {'p50 no text':>12s} {f'p50 / {first} mean cold':>22s}")
    for name, r in results.items():
        nt = f"{r['no_text_p50_ms']:12.1f}" if "no_text_p50_ms" in r else f"{'':12s}"
        print(f"{name:56s} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {nt} {r['p50_ms'] / base:22.2f}")


if __name__ == "__main__":
    main()
