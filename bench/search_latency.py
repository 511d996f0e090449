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
import os
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
from vidseek.retrieval.backends import where_for  # noqa: E402
from vidseek.retrieval.frame_cache import FrameCache  # noqa: E402
from vidseek.retrieval.frame_mirror import FrameMirror  # noqa: E402
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
        rows_of_batch = [r for f in frames for r in f]
        for i in range(0, len(rows_of_batch), 10_000):  # ≤ 10k rows (~21 MB at 512-d) under gRPC's 64 MB
            store.client.insert(store.frames, rows_of_batch[i : i + 10_000])
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


def time_paths(store: VideoStore, clip, label: str, queries: list[str], n_videos: int, mirror_dir: Path) -> dict:
    """Three ways to the candidates' frames, cold (no frame cache), same store, same run, interleaved query by
    query (the order rotating) so that drift on a noisy machine hits them alike: the fast path (columnar
    reads from Milvus), the row path it replaced (retrieval/row_path.py), and the fast path reading frames
    from a synced frame mirror (retrieval/frame_mirror.py). The mirror's hits are checked against the fast
    path's: same videos, same scores."""
    no_cache = dict(clip=clip, warn=False, query_cache=QueryCache(0))  # the text tower runs on every search
    mirror = FrameMirror(mirror_dir, store)
    t = time.perf_counter()
    synced = mirror.sync()
    sync_s = time.perf_counter() - t
    paths = {
        "fast": Searcher(store, cache_vectors=0, **no_cache),
        "row": RowPathSearcher(store, **no_cache),
        "mirror": Searcher(store, cache_vectors=0, frame_mirror=mirror, **no_cache),
    }
    out, agree, among, fast_varies = {}, {}, {}, {}
    for name in ("query-weighted + rerank@100", "mean, no rerank"):
        params = CONFIGS[name]
        lat: dict[str, list[float]] = {p: [] for p in paths}
        for s in paths.values():
            s.search(queries[0], params)
        for i, q in enumerate(queries):
            got = {}
            order = list(paths)[i % 3 :] + list(paths)[: i % 3]
            for path in order:
                t = time.perf_counter()
                got[path] = paths[path].search(q, params)
                lat[path].append((time.perf_counter() - t) * 1000)
                assert len(got[path]) == min(params.k, n_videos)
            same = _result(got["mirror"]) == _result(got["fast"])
            if not same:  # the server's ANN may answer a repeated query differently: is the mirror's among them?
                tries = {_result(paths["fast"].search(q, params)) for _ in range(4)} | {_result(got["fast"])}
                among[name] = among.get(name, 0) + (_result(got["mirror"]) in tries)
                fast_varies[name] = fast_varies.get(name, 0) + (len(tries) > 1)
            agree[name] = agree.get(name, 0) + same
        for path in paths:
            out[f"{name} [{label}, {path} path, cold]"] = _percentiles(lat[path])
    out[f"mirror sync [{label}]"] = {
        "sync_s": round(sync_s, 1),
        "rows": synced.rows,
        "videos": synced.videos,
        "queries_mirror_equal_fast": {k: f"{v}/{len(queries)}" for k, v in agree.items()},
        # of the other queries: how many gave different answers over 5 fast searches (the server's ANN), and
        # how many had the mirror's answer among them
        "others_fast_varies": fast_varies,
        "others_mirror_among_fast": among,
        "ann_repeats_differ": ann_repeatability(paths["fast"], queries),
    }
    mirror.close()
    return out


def _result(hits) -> tuple:
    return tuple((h.video_id, h.score) for h in hits)


def ann_repeatability(searcher: Searcher, queries: list[str], depth: int = 100) -> dict:
    """How many queries get a different first stage when the same query vector is searched twice: the video
    ANN and the grouped frame ANN (a server searching segments concurrently was seen to differ)."""
    where = where_for(searcher.store, "")
    qvecs = searcher.encode_queries(queries)
    video = frame = 0
    for v in qvecs:
        a, b = (searcher.backend.search_videos(v[None], depth, "mean_vec", where)[0] for _ in range(2))
        video += [h["video_id"] for h in a] != [h["video_id"] for h in b]
        a, b = (searcher.backend.search_frames_grouped(v[None], depth, where)[0] for _ in range(2))
        frame += [h["video_id"] for h in a] != [h["video_id"] for h in b]
    return {"video_ann": f"{video}/{len(queries)}", "grouped_frame_ann": f"{frame}/{len(queries)}"}


SERVE = """
import sys, uvicorn
from vidseek.apps.service import create_app
uri, prefix, mirror, port = sys.argv[1:]
app = create_app(uri, prefix=prefix, frame_mirror=mirror or None, mirror_sync_s=0, allowed_hosts={"127.0.0.1"})
uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning")
"""


def serve_load(uri: str, prefix: str, mirror_dir: str, n_clients: int, per_client: int) -> dict:
    """Queries per second and p50/p99 of ``n_clients`` concurrent clients, each sending ``per_client`` distinct
    default searches (``GET /search``: query-weighted + rerank@100) to the service app ``vidseek serve``
    runs (``create_app`` under uvicorn), in a process of its own; every query text is new (no query cache)."""
    import http.client
    import socket
    import subprocess
    import threading

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", SERVE, uri, prefix, mirror_dir, str(port)])
    try:
        _wait_healthy(port, proc)
        lat: list[float] = []
        errors: list[str] = []
        start = threading.Barrier(n_clients + 1)

        def client(c: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            start.wait()
            for i in range(per_client):
                q = f"client {c} asks question {i} about a scene".replace(" ", "+")
                t = time.perf_counter()
                conn.request("GET", f"/search?q={q}&k=10")
                r = conn.getresponse()
                body = r.read()
                lat.append((time.perf_counter() - t) * 1000)
                if r.status != 200 or b'"hits"' not in body:
                    errors.append(f"{r.status} {body[:200]!r}")

        threads = [threading.Thread(target=client, args=(c,)) for c in range(n_clients)]
        for th in threads:
            th.start()
        start.wait()
        t0 = time.perf_counter()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
        assert not errors, errors[:3]
        return {**_percentiles(lat), "qps": round(len(lat) / wall, 2), "clients": n_clients, "requests": len(lat)}
    finally:
        proc.terminate()
        proc.wait(60)


def _wait_healthy(port: int, proc, timeout_s: float = 600) -> None:
    import http.client

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with {proc.returncode} before answering")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(1)
    raise RuntimeError("the service did not answer /healthz in time")


def settle(store: VideoStore, server_pid: int | None, timeout_s: float = 1800) -> dict:
    """A server settled before timing: segments compacted (``compact``, waited for), every row indexed, and,
    with the server's PID, its CPU under 10 % of one core for 90 s in a row (after a bulk insert, compaction and
    index builds run for many minutes on a 2-core machine). Returns the seconds each step waited."""
    waited = {}
    t = time.perf_counter()
    for collection in (store.frames, store.videos):
        job = store.client.compact(collection)
        deadline = time.monotonic() + timeout_s
        while (state := store.client.get_compaction_state(job)) != "Completed" and time.monotonic() < deadline:
            time.sleep(2)
        if state != "Completed":  # timed on an unsettled server: say so rather than wait forever
            print(f"settle: compaction of {collection} still {state} after {timeout_s:.0f} s", file=sys.stderr)
            waited[f"compaction_{collection}"] = state
    waited["compact_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    wait_for_indexes(store, timeout_s)
    waited["index_s"] = round(time.perf_counter() - t, 1)
    if server_pid:
        t = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        quiet_windows = 0
        while time.monotonic() < deadline and quiet_windows < QUIET_WINDOWS:
            quiet_windows = quiet_windows + 1 if _cpu_share(server_pid, 10.0) <= 0.10 else 0
        waited["quiet_s"] = round(time.perf_counter() - t, 1)
    return waited


# Quiet means 90 s in a row under 10 % of a core. One quiet 10 s window was not enough: a 10k × 30 store on
# 2.3.5 was quiet for 10 s 130 s after its inserts, then busy at ~1.9 cores for 2.5 more minutes (the server's
# own compactions and their index builds), and searches timed then ran 4–5× slower (p50 230–630 ms, 50 ms after).
QUIET_WINDOWS = 9


def _cpu_share(pid: int, window_s: float) -> float:
    """CPU seconds per second a process used over ``window_s`` (1.0 = one core busy)."""

    def ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    hz = os.sysconf("SC_CLK_TCK")
    a = ticks()
    time.sleep(window_s)
    return (ticks() - a) / hz / window_s


def parse_args() -> argparse.Namespace:
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
    ap.add_argument(
        "--server-pid",
        type=int,
        default=None,
        help="the server binary's PID (`milvus run standalone`, not the `milvus-server` wrapper that spawns it): time it only once its CPU is quiet",
    )
    ap.add_argument(
        "--frames-scale",
        type=int,
        default=1,
        help="also a store of videos/N × frames·N (the same frame rows, N times the frames per candidate), "
        "timed on the three paths",
    )
    ap.add_argument("--serve-clients", type=int, default=0, help="with --server: N concurrent clients of the service")
    ap.add_argument("--serve-queries", type=int, default=20, help="searches per service client")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.no_lite and not args.server:
        ap.error("--no-lite needs --server")
    return args


def drop_collections(store: VideoStore, prefix: str) -> None:
    for name in store.client.list_collections():
        if name.startswith(prefix + "_"):
            store.client.drop_collection(name)


def time_replica(store: VideoStore, clip, queries: list[str]) -> tuple[dict, float]:
    t = time.perf_counter()
    replica = Searcher(store, clip=clip, in_memory=True, query_cache=QueryCache(0))
    load_s = time.perf_counter() - t
    out = {}
    for name, params in CONFIGS.items():
        replica.search(queries[0], params)
        lat = []
        for q in queries:
            t = time.perf_counter()
            replica.search(q, params)
            lat.append((time.perf_counter() - t) * 1000)
        out[f"{name} [in-memory]"] = _percentiles(lat)
    return out, load_s


def run_store(
    args, clip, label: str, uri: str, prefix: str, scale: int, tmp: Path, queries: list[str], replica: bool
) -> dict:
    """Build, settle and time one store; ``scale`` > 1: videos/scale × frames·scale, the three paths only."""
    n_videos, n_frames = args.videos // scale, args.frames * scale
    tag = label if scale == 1 else f"{label}, {scale}× frames"
    out: dict = {"build_s": build_store(uri, clip, n_videos, n_frames, prefix)}
    store = VideoStore(uri, prefix)
    try:
        if label == "server":
            out["settle"] = settle(store, args.server_pid)
        out["configs"] = time_paths(store, clip, tag, queries, n_videos, tmp / f"mirror-{prefix}")
        if scale == 1:
            searcher = Searcher(store, clip=clip, cache_vectors=0, query_cache=QueryCache(0))
            out["configs"].update(time_store(searcher, label, queries, n_videos))
        if replica:
            timed, out["replica_load_s"] = time_replica(store, clip, queries)
            out["configs"].update(timed)
        if scale == 1 and label == "server" and args.serve_clients:
            for path, mirror in (("fast path", ""), ("mirror", str(tmp / f"mirror-serve-{prefix}"))):
                key = f"service, {args.serve_clients} clients, {path} [{label}]"
                out["configs"][key] = serve_load(uri, prefix, mirror, args.serve_clients, args.serve_queries)
    finally:
        if label == "server":
            drop_collections(store, prefix)
        store.close()
    return out


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    clip = load_clip(args.model, "none", device="cpu")
    tmp = Path(tempfile.mkdtemp(prefix="vidseek-bench-"))
    stores = {} if args.no_lite else {"Lite": str(tmp / "bench.db")}
    if args.server:
        stores["server"] = args.server
    queries = [f"query number {i} about a scene with things" for i in range(args.queries)]
    results, build, settled, load_s = {}, {}, {}, 0.0
    try:
        encode_texts(clip, [queries[0]])  # untimed: the first call loads the tokenizer (~0.9 s here)
        t = time.perf_counter()  # the text tower alone, on the same machine and run
        for q in queries[:5]:
            encode_texts(clip, [q])
        text_ms = (time.perf_counter() - t) / 5 * 1000
        for label, uri in stores.items():
            for scale in sorted({1, args.frames_scale}):
                prefix = f"bench{int(time.time())}x{scale}" if label == "server" else f"vidseek{scale}"
                uri_s = uri if label == "server" else str(tmp / f"bench{scale}.db")
                replica = scale == 1 and label == next(iter(stores))  # the in-memory replica: the first store
                r = run_store(args, clip, label, uri_s, prefix, scale, tmp, queries, replica)
                build[f"{label} ×{scale}"] = r["build_s"]
                settled.update({f"{label} ×{scale}": r["settle"]} if "settle" in r else {})
                results.update(r["configs"])
                print(json.dumps({"partial": label, "scale": scale, **r}), file=sys.stderr, flush=True)
                load_s = r.get("replica_load_s", load_s)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "videos": args.videos,
        "frame_vectors": args.videos * args.frames,
        "model": args.model,
        "build_s": {k: round(v, 1) for k, v in build.items()},
        "settle": settled,
        "replica_load_s": round(load_s, 1),
        "text_encode_ms": round(text_ms, 1),
        "configs": results,
    }
    if args.json:
        print(json.dumps(out))
        return
    print_table(args, out, next(iter(stores)))


def print_table(args, out: dict, first: str) -> None:
    built = ", ".join(f"{k} {v:.0f} s" for k, v in out["build_s"].items())
    print(
        f"store: {args.videos} videos, {args.videos * args.frames} frame vectors (inserted and indexed: {built}); "
        f"settled: {out['settle']}; {args.model} text encode {out['text_encode_ms']:.1f} ms/query; "
        f"in-memory replica loaded in {out['replica_load_s']:.1f} s"
    )
    results = out["configs"]
    base = results[f"mean, no rerank [{first}, cold]"]["p50_ms"]
    print(
        f"{'configuration':64s} {'p50 ms':>8s} {'p99 ms':>8s} {'p50 no text':>12s} {'qps':>6s} {f'p50 / {first} mean cold':>22s}"
    )
    for name, r in results.items():
        if "p50_ms" not in r:
            print(f"{name:64s} {r}")
            continue
        nt = f"{r['no_text_p50_ms']:12.1f}" if "no_text_p50_ms" in r else f"{'':12s}"
        qps = f"{r['qps']:6.1f}" if "qps" in r else f"{'':6s}"
        print(f"{name:64s} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {nt} {qps} {r['p50_ms'] / base:22.2f}")


if __name__ == "__main__":
    main()
