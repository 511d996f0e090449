"""``vidseek eval``: text→video retrieval metrics of a store, through the real search path.

Each caption is a query whose ground truth is its video. Every configuration (aggregation, τ, rerank) runs
``Searcher.search_vectors`` — ANN first stage, frame rescoring, CLIPRerank — with a first stage deep enough
to reach every video of the dataset, so ranks are exact, not truncated.

Ranks are 1-based and pessimistic on ties: r = 1 + #{other videos scored ≥ the right one}. After a rerank
only the top-``depth`` candidates have fused scores; the rest keep first-stage order below them, so a video
outside the reranked head is ranked among the tail by its first-stage score. A video the first stage never
returned gets the worst rank (the number of videos).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from vidseek.retrieval.datasets import CaptionPair
from vidseek.retrieval.metrics import retrieval_metrics
from vidseek.retrieval.moments import moment_metrics
from vidseek.retrieval.params import DEFAULTS
from vidseek.retrieval.search import Hit, Searcher, SearchParams
from vidseek.store.video_store import VideoLookup

MAX_FIRST_STAGE = 16_384  # Milvus' top-k limit
DEFAULT_CONFIGS = ("mean", "max", "query-weighted:0.1", "mean+rerank", "query-weighted:0.1+rerank")


def parse_config(spec: str, depth: int = DEFAULTS.depth, alpha: float = DEFAULTS.alpha) -> tuple[str, SearchParams]:
    """``mean`` | ``max`` | ``query-weighted[:τ]`` | ``learned``, optionally ``+rerank``."""
    name, plus, suffix = spec.partition("+")
    if plus and suffix != "rerank":
        raise ValueError(f"bad eval config {spec!r}: only '+rerank' may follow the aggregation")
    agg, _, tau = name.partition(":")
    params = SearchParams(
        aggregation=agg, tau=float(tau) if tau else DEFAULTS.tau, rerank=bool(plus), depth=depth, alpha=alpha
    ).validate()
    label = agg + (f" τ={params.tau:g}" if agg == "query-weighted" else "") + (" + rerank" if plus else "")
    return label, params


def map_videos(pairs: list[CaptionPair], searcher: Searcher, dataset: str) -> list[str]:
    """Each pair's store video id, matched by id, absolute path or file stem; raises naming what is missing."""
    lookup = VideoLookup(searcher.store)
    out, missing = [], []
    for p in pairs:
        vid = lookup.find(p.video)
        out.append(vid or "")
        if vid is None:
            missing.append(p.video)
    if missing:
        raise ValueError(
            f"{len(set(missing))} videos of {dataset} are not indexed in {searcher.store.uri} "
            f"(first: {sorted(set(missing))[:5]}); run `vidseek index` on them first"
        )
    return out


def order_key(hits: list[Hit], i: int, depth: int, reranked: bool) -> tuple[int, float]:
    """(tier, score) of hit i: a lower tier ranks higher, then a higher score. After a rerank, hits below
    the reranked head form tier 1, in first-stage order."""
    if reranked and i >= depth:
        return 1, hits[i].scores["initial"]
    return 0, hits[i].score


def pessimistic_rank(hits: list[Hit], gt: str, n_videos: int, depth: int, reranked: bool) -> int:
    ids = [h.video_id for h in hits]
    if gt not in ids:
        return n_videos
    g = ids.index(gt)

    def key(i: int) -> tuple[int, float]:
        return order_key(hits, i, depth, reranked)

    kg = key(g)
    return 1 + sum(
        1 for i in range(len(hits)) if i != g and (key(i)[0] < kg[0] or (key(i)[0] == kg[0] and key(i)[1] >= kg[1]))
    )


@dataclass
class EvalRow:
    config: str
    metrics: dict
    recall_curve: list[float]  # R@K for K = 1..len


def evaluate(
    searcher: Searcher,
    pairs: list[CaptionPair],
    configs: list[tuple[str, SearchParams]],
    dataset: str = "dataset",
    batch: int = 64,
) -> list[EvalRow]:
    gt = map_videos(pairs, searcher, dataset)
    store_videos = searcher.store.count(filter='status == "ok"')
    k = min(store_videos, MAX_FIRST_STAGE)
    qvec = searcher.encode_queries([p.caption for p in pairs])  # [Q, D]
    timed = any(p.spans for p in pairs)
    rows = []
    for label, params in configs:
        p = replace(params, k=k)
        ranks, top10 = [], []
        for i in range(0, len(pairs), batch):
            results = searcher.search_vectors(qvec[i : i + batch], p, first_stage_depth=k)
            ranks += [
                pessimistic_rank(h, g, store_videos, p.depth, p.rerank) for h, g in zip(results, gt[i : i + batch])
            ]
            top10 += [h[:10] for h in results]
        r = np.array(ranks)
        curve = [float(100 * np.mean(r <= kk)) for kk in range(1, min(100, store_videos) + 1)]
        metrics = retrieval_metrics(r)
        if timed:  # the dataset says where each caption holds: how well the hits' moments point there
            metrics.update(moment_metrics(top10, gt, [q.spans for q in pairs]))
        rows.append(EvalRow(label, metrics, curve))
    return rows


def markdown_table(rows: list[EvalRow], title: str = "") -> str:
    timed = any("n_moments" in r.metrics for r in rows)
    head = "| config | R@1 | R@5 | R@10 | MdR | MnR | n |"
    rule = "|---|---:|---:|---:|---:|---:|---:|"
    if timed:
        head += " moment overlap@10 % | median error s | R@1 IoU≥0.5 |"
        rule += "---:|---:|---:|"
    lines = [f"**{title}**\n" if title else "", head, rule]
    for r in rows:
        m = r.metrics
        line = (
            f"| {r.config} | {m['R@1']:.1f} | {m['R@5']:.1f} | {m['R@10']:.1f} | {m['MdR']:g} | "
            f"{m['MnR']:.1f} | {m['n']} |"
        )
        if timed:
            line += f" {m['overlap@10']:.1f} | {m['median_err_s']:.2f} | {m['R@1 IoU≥0.5']:.1f} |"
        lines.append(line)
    return "\n".join(x for x in lines if x)


def save_outputs(rows: list[EvalRow], out_dir: str | Path, title: str = "") -> dict[str, str]:
    """Write eval.md, eval.json and recall_at_k.png into ``out_dir``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.md").write_text(markdown_table(rows, title) + "\n")
    (out / "eval.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.plot(range(1, len(r.recall_curve) + 1), r.recall_curve, label=r.config)
    ax.set_xscale("log")
    ax.set_xlabel("K")
    ax.set_ylabel("R@K (%)")
    ax.set_title(title or "text→video recall@K")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "recall_at_k.png", dpi=120)
    plt.close(fig)
    return {"markdown": str(out / "eval.md"), "json": str(out / "eval.json"), "plot": str(out / "recall_at_k.png")}
