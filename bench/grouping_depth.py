"""Client-side frame grouping (Milvus 2.3) with a learned start depth beside one pinned at ``GROUP_FANOUT``.

On a server that cannot group frames by video, the best frame per video comes from the top ``k × fanout``
frames, fetched again deeper while a query has fewer than k videos (store/search_strategies.py). Builds (or
re-uses, ``--reuse``) synthetic stores of ``VIDEOSxFRAMES`` each (bench/search_latency.py ``build_store``:
frames clustered per video), then times ``search_frames_grouped`` (k = 100) for the same ViT-B-32 text
vectors two ways, interleaved query by query: ``pinned`` (every search starts at GROUP_FANOUT frames per
video, as before) and ``learned`` (the start learned so far: a grid of √2 steps that only rises). Prints p50 ms,
server searches and frames fetched per query, how many queries gave the same videos when searched again
after all the others (learned), and each way's recall@k against exact grouping (numpy over every frame, read
through a synced frame mirror): the ANN's answer depends on its search depth, so the two lists can differ
without either being wrong.

    python bench/grouping_depth.py --server http://127.0.0.1:19530 --stores 3333x30,1111x90
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_latency import build_store, settle  # noqa: E402

from vidseek.operators.encode import encode_texts, load_clip  # noqa: E402
from vidseek.retrieval.frame_mirror import FrameMirror  # noqa: E402
from vidseek.store.search_strategies import GROUP_FANOUT  # noqa: E402
from vidseek.store.video_store import SEARCH_CONSISTENCY, VideoStore  # noqa: E402


def exact_top(store: VideoStore, qvecs: np.ndarray, k: int) -> list[set[str]]:
    """Per query, the k videos with the best frame: exact max pooling over every frame of the store."""
    with tempfile.TemporaryDirectory(prefix="vs-mirror-") as d:
        mirror = FrameMirror(Path(d), store)
        mirror.sync()
        tables = mirror.read(mirror.video_ids())
        mirror.close()
    ids = sorted(tables)
    best = np.stack([(tables[v].vectors @ qvecs.T).max(0) for v in ids], axis=1)  # [Q, V]
    return [{ids[j] for j in np.argsort(-row)[:k]} for row in best]


def measure(store: VideoStore, qvecs: np.ndarray, k: int) -> dict:
    search = store._search  # the store's strategy object: its fanout is what is pinned or learned
    if search.frame_grouping != "client":
        raise SystemExit("this server groups frames itself (group_by_field): nothing to compare")
    fetched: list[int] = []
    fetch = search._frame_hits

    def counted(data, limit, *a, **kw):
        fetched.append(limit)
        return fetch(data, limit, *a, **kw)

    search._frame_hits = counted
    store.search_frames_grouped(qvecs[:1], k)  # warm: connections, and a first depth to learn
    exact = exact_top(store, qvecs, k)
    out = {m: {"ms": [], "searches": [], "frames": [], "recall": []} for m in ("pinned", "learned")}
    same, learned_fanout, first_pass = 0, search.fanout, []
    for i, q in enumerate(qvecs):
        got = {}
        for mode in ("pinned", "learned") if i % 2 else ("learned", "pinned"):
            search.fanout = GROUP_FANOUT if mode == "pinned" else learned_fanout
            fetched.clear()
            t = time.perf_counter()
            got[mode] = [h["video_id"] for h in store.search_frames_grouped(q[None], k)[0]]
            out[mode]["ms"].append((time.perf_counter() - t) * 1000)
            out[mode]["searches"].append(len(fetched))
            out[mode]["frames"].append(sum(fetched))
            out[mode]["recall"].append(len(set(got[mode]) & exact[i]) / k)
            if mode == "learned":
                learned_fanout = search.fanout
        same += got["pinned"] == got["learned"]
        first_pass.append(got["learned"])
    search.fanout = learned_fanout
    repeated = sum(
        [h["video_id"] for h in store.search_frames_grouped(q[None], k)[0]] == first
        for q, first in zip(qvecs, first_pass)
    )
    search._frame_hits = fetch
    summary = {
        m: {
            "p50_ms": round(float(np.percentile(v["ms"], 50)), 1),
            "searches_per_query": round(float(np.mean(v["searches"])), 2),
            "frames_per_query": round(float(np.mean(v["frames"])), 0),
            f"recall_at_{k}_vs_exact": round(float(np.mean(v["recall"])), 4),
        }
        for m, v in out.items()
    }
    summary["learned_over_pinned_p50"] = round(summary["learned"]["p50_ms"] / summary["pinned"]["p50_ms"], 3)
    summary["same_videos"] = f"{same}/{len(qvecs)}"
    summary["learned_fanout"] = round(learned_fanout, 1)
    summary["learned_repeat_same_videos"] = f"{repeated}/{len(qvecs)}"
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", required=True, help="a Milvus 2.3 server URI")
    ap.add_argument("--stores", default="3333x30,1111x90", help="VIDEOSxFRAMES, comma-separated")
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--reuse", action="store_true", help="the stores exist (same prefixes): do not build them")
    ap.add_argument(
        "--server-pid",
        type=int,
        default=None,
        help="settle: wait for the CPU of the server binary (`milvus run standalone`, not its wrapper) to go quiet",
    )
    ap.add_argument("--settle-timeout", type=float, default=1800, help="seconds to wait for compaction, indexes")
    ap.add_argument("--json", action="store_true", help="one JSON line of every store's figures at the end")
    args = ap.parse_args()
    torch.manual_seed(0)  # the random-init text tower: the same query vectors every run
    clip = load_clip("ViT-B-32", "none", device="cpu")
    qvecs = encode_texts(clip, [f"a video of thing number {i} doing something" for i in range(args.queries)])
    qvecs = (qvecs / np.linalg.norm(qvecs, axis=1, keepdims=True)).astype(np.float32)  # [Q, D] unit
    results = {}
    for spec in args.stores.split(","):
        n_videos, n_frames = map(int, spec.split("x"))
        prefix = f"p{n_videos}x{n_frames}"
        if not args.reuse:
            build_store(args.server, clip, n_videos, n_frames, prefix=prefix)
        with VideoStore(args.server, prefix) as store:
            store.search_consistency = SEARCH_CONSISTENCY  # as a Searcher reads: no wait for a Strong time tick
            waited = settle(store, args.server_pid, args.settle_timeout)
            print(spec, "settle", json.dumps(waited), file=sys.stderr, flush=True)
            results[spec] = measure(store, qvecs, args.k)
        print(spec, json.dumps(results[spec]), flush=True)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
