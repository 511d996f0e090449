"""The testbed's queries through three search paths over one store: the fast path, the row path it replaced
(retrieval/row_path.py) and the fast path reading a frame mirror (retrieval/frame_mirror.py).

    python -m vidseek.apps.testbed.search_paths_eval --world /tmp/vidseek-testbed/eval --store /tmp/vidseek-testbed/eval.db

Prints, per configuration, how many queries get the same order and the same moments on the fast and row
paths, their largest score difference, and how many get identical hits (ids, scores, moments) with the mirror.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from vidseek.retrieval.frame_mirror import FrameMirror
from vidseek.retrieval.row_path import RowPathSearcher
from vidseek.retrieval.search import Searcher, SearchParams
from vidseek.store.video_store import VideoStore

CONFIGS = {
    "query-weighted:0.1+rerank (default)": SearchParams(),
    "max": SearchParams(aggregation="max", rerank=False),
    "mean": SearchParams(aggregation="mean", rerank=False),
    "query-weighted:0.01": SearchParams(aggregation="query-weighted", tau=0.01, rerank=False),
}


def compare_paths(store: VideoStore, queries: list[str], mirror_dir: Path) -> dict[str, dict]:
    fast = Searcher(store, warn=False)
    row = RowPathSearcher(store, clip=fast.clip, warn=False)
    mirror = FrameMirror(mirror_dir, store)
    mirror.sync()
    mirrored = Searcher(store, clip=fast.clip, warn=False, frame_mirror=mirror)
    out = {}
    for name, params in CONFIGS.items():
        a, b, c = fast.search(queries, params), row.search(queries, params), mirrored.search(queries, params)
        diffs = [abs(h.score - g.score) for x, y in zip(a, b) for h, g in zip(x, y) if h.score == h.score]
        out[name] = {
            "queries": len(queries),
            "same_order": sum([h.video_id for h in x] == [h.video_id for h in y] for x, y in zip(a, b)),
            "same_moments": sum(
                [(h.moment, h.best_t) for h in x] == [(h.moment, h.best_t) for h in y] for x, y in zip(a, b)
            ),
            "max_score_diff": max(diffs, default=0.0),
            "mirror_identical": sum(
                [(h.video_id, h.score, h.moment) for h in x] == [(h.video_id, h.score, h.moment) for h in y]
                for x, y in zip(a, c)
            ),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", type=Path, default=Path("/tmp/vidseek-testbed/eval"))
    ap.add_argument("--store", default="/tmp/vidseek-testbed/eval.db")
    args = ap.parse_args()
    queries = [q["query"] for q in json.loads((args.world / "manifest.json").read_text())["queries"]]
    with VideoStore(args.store) as store, tempfile.TemporaryDirectory(prefix="vidseek-mirror-") as tmp:
        for name, r in compare_paths(store, queries, Path(tmp)).items():
            print(
                f"{name}: {r['queries']} queries; fast vs row: same order {r['same_order']}, same moments "
                f"{r['same_moments']}, max |score diff| {r['max_score_diff']:.1e}; mirror identical {r['mirror_identical']}"
            )


if __name__ == "__main__":
    main()
