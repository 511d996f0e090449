"""The testbed's quality table through the real path: video files → index job → Milvus → search → R@K.

    vidseek testbed eval --world /tmp/vidseek-testbed/eval --store /tmp/vidseek-testbed/eval.db

Indexes the eval world with the ``testbed`` model (resumable: a second run only searches), then runs
``vidseek.retrieval.evaluate`` per query family for each configuration, and checks the store path against an
in-memory computation over the *same stored vectors* (``vidseek.operators.aggregate`` on ``frames_of``): equal
ranks mean nothing was lost or reordered between files and results (ANN included).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from vidseek.apps.testbed.quality import FAMILIES, TAUS
from vidseek.apps.testbed.world import load_manifest, query_spans
from vidseek.operators.aggregate import get_scorer, pad_frames
from vidseek.pipeline.index_job import IndexConfig, run_index
from vidseek.retrieval.datasets import CaptionPair
from vidseek.retrieval.evaluate import evaluate, map_videos, order_key, parse_config
from vidseek.retrieval.metrics import retrieval_metrics
from vidseek.retrieval.search import Searcher

CONFIGS = ["mean", "max", *[f"query-weighted:{t:g}" for t in TAUS], "mean+rerank", "query-weighted:0.1+rerank"]


def store_quality(
    world: str | Path, store: str, sampling: str = "fps:2", head: str | None = None, depth: int = 20
) -> dict:
    world = Path(world)
    summary = run_index(
        IndexConfig(
            source=str(world),
            store=store,
            model="testbed",
            sampling=sampling,
            progress=False,
            head=str(head) if head else None,
        )
    )
    configs = CONFIGS + (["learned"] if head else [])
    searcher = Searcher(store)
    try:
        table = evaluate_world(searcher, world, configs, depth)
        check = in_memory_check(searcher, world_queries(world), world)
    finally:
        searcher.store.close()
    return {
        "world": str(world),
        "store": store,
        "sampling": sampling,
        "index": summary.as_dict(),
        "depth": depth,
        "table": table,
        "in_memory_check": check,
    }


def world_queries(world: Path) -> list[dict]:
    return [json.loads(line) for line in (world / "queries.jsonl").read_text().splitlines() if line.strip()]


def evaluate_world(searcher: Searcher, world: Path, configs: list[str], depth: int = 20) -> dict[str, dict]:
    """Metrics per configuration and family (moments where the manifest gives a span; order pair %)."""
    queries, manifest = world_queries(world), load_manifest(world)
    table: dict[str, dict] = {c: {} for c in configs}
    parsed = [parse_config(c, depth=depth) for c in configs]
    for fam in FAMILIES:
        pairs = [
            CaptionPair(str((world / q["video"]).absolute()), q["query"], query_spans(manifest, q))
            for q in queries
            if q["family"] == fam
        ]
        if not pairs:
            continue
        for spec, row in zip(configs, evaluate(searcher, pairs, parsed, f"{world}/queries.jsonl")):
            table[spec][fam] = row.metrics
    order = [q for q in queries if q["family"] == "order"]
    if order:
        for spec, (_, params) in zip(configs, parsed):
            table[spec]["order"]["pair"] = pair_accuracy(searcher, order, world, params)
    return table


def pair_accuracy(searcher: Searcher, order: list[dict], world: Path, params) -> float:
    """% of "X then Y" queries whose clip ranks strictly above its partner (same objects, other order).

    Through the search path like the ranks: a tie counts as a miss (pessimistic), and after a rerank a
    video inside the reranked head beats one below it whatever their first-stage scores.
    """
    clips = map_videos(
        [CaptionPair(str((world / q["video"]).absolute()), q["query"]) for q in order], searcher, "order queries"
    )
    partners = map_videos(
        [CaptionPair(str((world / q["partner"]).absolute()), q["query"]) for q in order], searcher, "order partners"
    )
    n = searcher.store.count(filter='status == "ok"')
    results = searcher.search_vectors(
        searcher.encode_queries([q["query"] for q in order]), replace(params, k=n), first_stage_depth=n
    )
    wins = 0
    for hits, gt, partner in zip(results, clips, partners):
        pos = {h.video_id: i for i, h in enumerate(hits)}

        def key(vid: str) -> tuple[int, float]:  # smaller tier first, then higher score; missing = last
            return order_key(hits, pos[vid], params.depth, params.rerank) if vid in pos else (2, 0.0)

        (tg, sg), (tp, sp) = key(gt), key(partner)
        wins += tg < tp or (tg == tp and sg > sp)
    return 100.0 * wins / len(order)


def in_memory_check(searcher: Searcher, queries: list[dict], world: Path) -> dict:
    """Ranks from the store path vs the same formulas on the stored vectors in memory, per configuration."""
    recs = searcher.store.video_records('status == "ok"', ["video_id", "path"])
    ids = [r["video_id"] for r in recs]
    col = {str(Path(r["path"])): i for i, r in enumerate(recs)}
    frames = searcher.store.frames_of(ids)
    F, mask = pad_frames(
        [frames[v].vectors for v in ids], searcher.store.dim, [frames[v].merged for v in ids]
    )  # [V, T, D], [V, T] frames per row
    q = torch.from_numpy(searcher.encode_queries([x["query"] for x in queries]))
    gt = np.array([col[str((world / x["video"]).absolute())] for x in queries])
    out = {}
    for spec in ("mean", "max", "query-weighted:0.1"):
        label, params = parse_config(spec)
        kw = {"tau": params.tau} if params.aggregation == "query-weighted" else {}
        S = get_scorer(params.aggregation)(q, F, mask, **kw).numpy()  # [Q, V]
        mem = (S >= S[np.arange(len(gt)), gt][:, None]).sum(1)  # counts the gt itself: 1 + #others ≥ it
        pairs = [CaptionPair(recs[g]["path"], x["query"]) for g, x in zip(gt, queries)]
        via_store = evaluate(searcher, pairs, [(label, params)])[0].metrics
        in_mem = retrieval_metrics(mem)
        out[label] = {
            "store": via_store,
            "memory": in_mem,
            "equal": all(abs(via_store[k] - in_mem[k]) < 1e-9 for k in ("R@1", "R@5", "R@10", "MdR")),
        }
    return out


def format_table(result: dict) -> str:
    fams = [f for f in FAMILIES if any(f in row for row in result["table"].values())]
    head = (
        "| config | "
        + " | ".join(f"{f} R@1 | {f} R@5 | {f} MdR" + (" | order pair %" if f == "order" else "") for f in fams)
        + " |"
    )
    lines = [head, "|---|" + "---:|" * (3 * len(fams) + ("order" in fams))]
    for spec, row in result["table"].items():
        cells = []
        for f in fams:
            m = row.get(f)
            cells += [f"{m['R@1']:.1f}", f"{m['R@5']:.1f}", f"{m['MdR']:g}"] if m else ["", "", ""]
            if f == "order":
                cells.append(f"{m['pair']:.1f}" if m and "pair" in m else "")
        lines.append(f"| {spec} | " + " | ".join(cells) + " |")
    timed = [f for f in fams if any("n_moments" in row.get(f, {}) for row in result["table"].values())]
    if timed:  # where the hit points, against the measured presence of what the query names
        lines.append("\nmoments (retrieval/moments.py)\n")
        cols = ("overlap@10", "overlap\\|top10", "median err s", "R@1 IoU≥.5")
        keys = ("overlap@10", "overlap|top10", "median_err_s", "R@1 IoU≥0.5")
        lines.append("| config | " + " | ".join(f"{f} {c}" for f in timed for c in cols) + " |")
        lines.append("|---|" + "---:|" * (len(cols) * len(timed)))
        for spec, row in result["table"].items():
            cells = []
            for f in timed:
                m = row.get(f, {})
                cells += [f"{m[k]:.2f}" if k == "median_err_s" else f"{m[k]:.1f}" for k in keys] if m else [""] * 4
            lines.append(f"| {spec} | " + " | ".join(cells) + " |")
    checks = ", ".join(f"{k}: {'equal' if v['equal'] else 'DIFFERENT'}" for k, v in result["in_memory_check"].items())
    lines.append(f"\nstore path vs in-memory over the same vectors: {checks}")
    return "\n".join(lines)
