"""The copy table: copies and excerpts of world clips found in an indexed library, and image queries.

    python -m vidseek.apps.testbed.copies_eval --out /tmp/vidseek-testbed/copies

Builds a gallery (``build_copy_set``): world A (the clips some copies are made of), for ``n_sources`` of its
clips five full copies made with ffmpeg (re-encoded at CRF 38, scaled ×1.5, cropped 10 % off the top-left,
4 → 5 fps — the world's analogue of 25 → 30 —, a 1 s black fade in and out) and a 10 s excerpt placed inside
a new video between two parts of a filler clip (world C, not indexed), plus distractors (world B, whose
identifying object pairs are none of A's). Indexes it with the ``testbed`` model through the real index job,
then measures (``evaluate_copy_set``):

- copy pairs: every pair of videos in one source's group (the source, its copies, its excerpt video) is a
  true pair; precision and recall of the pairs ``find_copies`` reports, and whether each is the kind
  expected ("duplicate" for full copies; for an excerpt, what its true coverage makes it);
- excerpt segment IoU: the reported segment against the true one, in the excerpt video and in the source;
- image queries: one PNG per clip of A and B (ffmpeg, at a time when an object is on screen); R@1 counts a
  hit when the first video is the clip or a video of its group holding that moment.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from vidseek.apps.testbed.world import generate_world, world_pairs
from vidseek.pipeline.index_job import IndexConfig, run_index
from vidseek.retrieval.copies import (
    CopyParams,
    CopyRecord,
    copies_from_probes,
    kind_of,
    library_whitening,
    probe_library,
)
from vidseek.retrieval.params import SearchParams
from vidseek.retrieval.query_by_example import ClipSearchParams, search_clip, search_image
from vidseek.retrieval.search import Searcher

FULL_COPIES = ("crf", "scale", "crop", "fps", "fade")
EXCERPT_S = 10.0


def ffmpeg(*args: str) -> None:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("the copy set needs the ffmpeg binary (apt-get install ffmpeg)")
    r = subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-y", *args], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {r.stderr[-800:]}")


X264 = ("-c:v", "libx264", "-preset", "fast", "-pix_fmt", "yuv420p", "-threads", "1")


def copy_filters(side: int, duration: float) -> dict[str, list[str]]:
    """ffmpeg arguments of each full copy of a ``side``-pixel clip of ``duration`` s."""
    crop = 2 * round(0.45 * side)  # 90 % of the side, even (yuv420p)
    off = round(0.1 * side)
    return {
        "crf": [*X264, "-crf", "38"],  # the world is written at CRF 20
        "scale": ["-vf", f"scale={3 * side // 2}:{3 * side // 2}", *X264],
        "crop": ["-vf", f"crop={crop}:{crop}:{off}:{off}", *X264],
        "fps": ["-vf", "fps=5", *X264],  # the world is 4 fps
        "fade": ["-vf", f"fade=t=in:st=0:d=1,fade=t=out:st={duration - 1:g}:d=1", *X264],
    }


def make_excerpt(out: Path, source: Path, at: float, filler: Path, before: float, after: float) -> None:
    """``out`` = filler[0, before) + source[at, at + EXCERPT_S) + filler[before + 5, before + 5 + after)."""
    gap = before + 5.0  # the filler's second part starts later: no frame of it appears twice
    ffmpeg(
        *("-ss", "0", "-t", f"{before:g}", "-i", str(filler)),
        *("-ss", f"{at:g}", "-t", f"{EXCERPT_S:g}", "-i", str(source)),
        *("-ss", f"{gap:g}", "-t", f"{after:g}", "-i", str(filler)),
        *("-filter_complex", "[0:v][1:v][2:v]concat=n=3:v=1:a=0,fps=4[v]", "-map", "[v]"),
        *X264,
        str(out),
    )


def _pick_sources(manifest: dict, n: int, rng: np.random.Generator) -> list[dict]:
    """``n`` clips of a world, families in turn (content, order, brief), each family's clips shuffled."""
    by_family: dict[str, list[dict]] = {}
    for c in manifest["clips"]:
        by_family.setdefault(c["family"], []).append(c)
    for clips in by_family.values():
        rng.shuffle(clips)
    out: list[dict] = []
    while len(out) < n and any(by_family.values()):
        for fam in ("content", "order", "brief"):
            if by_family.get(fam) and len(out) < n:
                out.append(by_family[fam].pop())
    return out


def build_copy_set(
    out: str | Path,
    seed: int = 7,
    n_sources: int = 20,
    world_a: tuple[int, int, int] = (30, 10, 10),
    world_b: tuple[int, int, int] = (20, 5, 5),
    brief_s: float = 60.0,
) -> dict:
    """Write the gallery under ``out/gallery`` (and PNG query frames under ``out/images``); return the truth
    (also written to ``out/truth.json``). ``world_a``/``world_b``: (content, order pairs, brief) clips."""
    out = Path(out)
    gallery = out / "gallery"
    rng = np.random.default_rng(seed)
    a = generate_world(gallery / "a", seed, *_content_brief_order(world_a), brief_s=brief_s)
    b = generate_world(
        gallery / "b",
        seed + 1,
        *_content_brief_order(world_b),
        brief_s=brief_s,
        exclude_pairs=world_pairs(gallery / "a"),
    )
    sources = _pick_sources(a, n_sources, rng)
    filler = generate_world(out / "filler", seed + 2, 0, len(sources), 0, brief_s=max(brief_s, 40.0))
    groups, excerpts = _write_copies(gallery, out / "filler", a, sources, filler, rng)
    images = _write_images(out / "images", gallery, [("a", a), ("b", b)], rng)
    truth = {"seed": seed, "groups": groups, "excerpts": excerpts, "images": images}
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth


def _content_brief_order(spec: tuple[int, int, int]) -> tuple[int, int, int]:
    content, order, brief = spec
    return content, brief, order  # generate_world's order of arguments


def _write_copies(gallery: Path, filler_dir: Path, world: dict, sources: list[dict], filler: dict, rng) -> tuple:
    copies = gallery / "copies"
    copies.mkdir(parents=True, exist_ok=True)
    side, groups, excerpts = world["side"], {}, []
    for clip, fill in zip(sources, filler["clips"]):
        name = Path(clip["video"]).stem
        src = gallery / "a" / clip["video"]
        members = [f"a/{clip['video']}"]
        for kind, args in copy_filters(side, clip["duration"]).items():
            ffmpeg("-i", str(src), *args, str(copies / f"{name}_{kind}.mp4"))
            members.append(f"copies/{name}_{kind}.mp4")
        at = float(rng.integers(0, int(2 * (clip["duration"] - EXCERPT_S)) + 1)) / 2  # a multiple of 0.5 s
        before, after = (float(rng.integers(10, 31)) / 2 for _ in range(2))  # 5–15 s of filler each side
        make_excerpt(copies / f"{name}_excerpt.mp4", src, at, filler_dir / fill["video"], before, after)
        members.append(f"copies/{name}_excerpt.mp4")
        groups[f"a/{clip['video']}"] = members
        excerpts.append(
            {
                "video": f"copies/{name}_excerpt.mp4",
                "source": f"a/{clip['video']}",
                "in_video": [before, before + EXCERPT_S],
                "in_source": [at, at + EXCERPT_S],
                "video_duration": before + EXCERPT_S + after,
                "source_duration": clip["duration"],
            }
        )
    return groups, excerpts


def _write_images(images: Path, gallery: Path, worlds: list[tuple[str, dict]], rng) -> list[dict]:
    """One PNG per clip, at a frame where at least one object is present (the manifest's measured truth)."""
    images.mkdir(parents=True, exist_ok=True)
    out = []
    for prefix, world in worlds:
        fps = world["fps"]
        for clip in world["clips"]:
            present = sorted({f for tr in clip["tracks"] for a, b in tr["present"] for f in range(a, b + 1)})
            if not present:
                continue
            t = (present[int(rng.integers(len(present)))] + 0.5) / fps  # the middle of the frame's display
            png = images / f"{prefix}_{Path(clip['video']).stem}.png"
            ffmpeg("-ss", f"{t:g}", "-i", str(gallery / prefix / clip["video"]), "-frames:v", "1", str(png))
            out.append({"image": png.name, "video": f"{prefix}/{clip['video']}", "t": t})
    return out


# -- evaluation -----------------------------------------------------------------------------------------
def evaluate_copy_set(
    root: str | Path,
    store: str,
    sampling: str = "fps:2",
    min_seconds: tuple[float, ...] = (5.0, 8.0),
    params: CopyParams = CopyParams(),
) -> dict:
    """Index ``root/gallery`` (resumable) and measure copies, excerpts and image queries against the truth."""
    root = Path(root)
    truth = json.loads((root / "truth.json").read_text())
    t = time.perf_counter()
    run_index(
        IndexConfig(source=str(root / "gallery"), store=store, model="testbed", sampling=sampling, progress=False)
    )
    index_s = time.perf_counter() - t
    searcher = Searcher(store)
    try:
        t = time.perf_counter()
        videos, probes = probe_library(searcher.store, params)
        whitening = library_whitening(searcher.store, params)
        probe_s, rows = time.perf_counter() - t, []
        names = {v: _name(row["path"], root / "gallery") for v, row in videos.items()}
        for ms in min_seconds:
            t = time.perf_counter()
            records = copies_from_probes(searcher.store, videos, probes, replace(params, min_seconds=ms), whitening)
            seconds = {"probe_s": round(probe_s, 1), "align_s": round(time.perf_counter() - t, 1)}
            rows.append({"min_seconds": ms, **seconds, **pair_metrics(records, names, truth, params)})
        images = image_metrics(searcher, root / "images", truth)
        clips = clip_metrics(searcher, root / "gallery", truth)
    finally:
        searcher.store.close()
    return {
        "videos": len(names),
        "sampling": sampling,
        "index_s": round(index_s, 1),
        "params": asdict(params),
        "copies": rows,
        "images": images,
        "clips": clips,
    }


def _name(path: str, gallery: Path) -> str:
    return Path(path).resolve().relative_to(gallery.resolve()).as_posix()


def _groups(truth: dict) -> dict[str, str]:
    """Video name -> the source clip of its group (a source is its own)."""
    return {m: src for src, members in truth["groups"].items() for m in members}


def true_pairs(truth: dict) -> set[frozenset]:
    return {frozenset(p) for ms in truth["groups"].values() for p in itertools.combinations(ms, 2)}


def pair_metrics(records: list[CopyRecord], names: dict[str, str], truth: dict, params: CopyParams) -> dict:
    """Precision and recall of the reported pairs, recall per copy kind, kinds as expected, excerpt IoU."""
    truth_pairs = true_pairs(truth)
    found = {frozenset((names[r.a], names[r.b])): r for r in records}
    tp = [p for p in found if p in truth_pairs]
    fp = [p for p in found if p not in truth_pairs]
    group = _groups(truth)
    recall_by = {}
    for kind in (*FULL_COPIES, "excerpt"):
        want = [frozenset((src, f"copies/{Path(src).stem}_{kind}.mp4")) for src in truth["groups"]]
        recall_by[kind] = round(sum(p in found for p in want) / max(1, len(want)), 3)
    kinds_ok = [found[p].kind == expected_kind(p, truth, params.cover) for p in tp]
    return {
        "found": len(found),
        "true": len(truth_pairs),
        "precision": round(len(tp) / max(1, len(found)), 3),
        "recall": round(len(tp) / max(1, len(truth_pairs)), 3),
        "false_positives": len(fp),
        "false_order_partners": sum(_order_partners(p, group) for p in fp),
        "recall_by_kind": recall_by,
        "kind_agreement": round(float(np.mean(kinds_ok)) if kinds_ok else 0.0, 3),
        "excerpt_iou": excerpt_iou(found, truth),
    }


def expected_kind(pair: frozenset, truth: dict, cover: float) -> str:
    """The kind the true coverage gives: full copies span their whole clip, an excerpt its 10 s."""
    ex = {e["video"]: e for e in truth["excerpts"]}
    x, y = sorted(pair)
    e = ex.get(x) or ex.get(y)
    if e is None:
        return "duplicate"
    seg = EXCERPT_S
    return kind_of(
        seg / e["video_duration"], seg / e["source_duration"], e["video_duration"], e["source_duration"], cover
    )


def _order_partners(pair: frozenset, group: dict[str, str]) -> bool:
    """Whether the pair's clips (or the clips they copy) are the two clips of one order pair of a world."""
    x, y = (group.get(n, n) for n in pair)
    sx, sy = Path(x).stem, Path(y).stem
    return x.split("/")[0] == y.split("/")[0] and sx.startswith("order_") and sx[:-1] == sy[:-1] and sx != sy


def excerpt_iou(found: dict[frozenset, CopyRecord], truth: dict) -> dict:
    """IoU of the reported segment with the true one, in the excerpt video and in its source (0 if missed)."""
    in_video, in_source = [], []
    for e in truth["excerpts"]:
        r = found.get(frozenset((e["video"], e["source"])))
        if r is None:
            in_video.append(0.0), in_source.append(0.0)
            continue
        a_is_video = r.a_path.endswith(e["video"])
        seg_v = (r.a_start, r.a_end) if a_is_video else (r.b_start, r.b_end)
        seg_s = (r.b_start, r.b_end) if a_is_video else (r.a_start, r.a_end)
        in_video.append(iou(seg_v, e["in_video"]))
        in_source.append(iou(seg_s, e["in_source"]))
    both = in_video + in_source
    return {
        "mean": round(float(np.mean(both)), 3) if both else 0.0,
        "min": round(float(np.min(both)), 3) if both else 0.0,
        "in_video": round(float(np.mean(in_video)), 3) if in_video else 0.0,
        "in_source": round(float(np.mean(in_source)), 3) if in_source else 0.0,
    }


def iou(a, b) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


IMAGE_CONFIGS = {"default": SearchParams(), "max": SearchParams(aggregation="max", rerank=False)}


def image_metrics(searcher: Searcher, images: Path, truth: dict) -> dict:
    """R@1 of image queries (first hit holds the frame: its clip, a full copy, or the excerpt around it)."""
    gallery = images.parent / "gallery"
    out = {}
    for config, params in IMAGE_CONFIGS.items():
        ok, strict, strict_n, moment, t = 0, 0, 0, 0, time.perf_counter()
        for q in truth["images"]:
            hits = search_image(searcher, images / q["image"], replace(params, k=1))
            top = _name(hits[0].path, gallery) if hits else ""
            holders = holders_of(q, truth)
            ok += top in holders
            moment += (
                top in holders
                and not top.endswith("_excerpt.mp4")
                and hits[0].moment[0] - 0.25 <= q["t"] <= hits[0].moment[1] + 0.25
            )
            if q["video"] not in truth["groups"]:  # a clip with no copy: only itself is right
                strict_n += 1
                strict += top == q["video"]
        n = max(1, len(truth["images"]))
        out[config] = {
            "queries": len(truth["images"]),
            "r1": round(ok / n, 3),
            "r1_uncopied": round(strict / max(1, strict_n), 3),
            "moment": round(moment / n, 3),
            "ms_per_query": round(1000 * (time.perf_counter() - t) / n, 1),
        }
    return out


def clip_metrics(searcher: Searcher, gallery: Path, truth: dict) -> dict:
    """Video-clip queries: each excerpt's 10 s of its source file (``--start``/``--end``) as the query. R@1
    counts the first hit in the source's group; the excerpt video must be among the hits, its aligned segment
    is scored against where the excerpt was placed, and the source's against the query's own range."""
    r1, found, ious, own, t = 0, 0, [], [], time.perf_counter()
    for e in truth["excerpts"]:
        members = set(truth["groups"][e["source"]])
        start, end = e["in_source"]
        hits = search_clip(searcher, gallery / e["source"], start, end, ClipSearchParams(k=10))
        named = {_name(h.path, gallery): h for h in hits}
        r1 += bool(hits) and _name(hits[0].path, gallery) in members
        if e["video"] in named:
            found += 1
            ious.append(iou(named[e["video"]].segment, e["in_video"]))
        if e["source"] in named:
            own.append(iou(named[e["source"]].segment, e["in_source"]))
    n = max(1, len(truth["excerpts"]))
    return {
        "queries": len(truth["excerpts"]),
        "r1": round(r1 / n, 3),
        "excerpt_in_top10": round(found / n, 3),
        "excerpt_iou": round(float(np.mean(ious)), 3) if ious else 0.0,
        "source_iou": round(float(np.mean(own)), 3) if own else 0.0,
        "ms_per_query": round(1000 * (time.perf_counter() - t) / n, 1),
    }


def holders_of(query: dict, truth: dict) -> set[str]:
    """The videos that show a query image's frame: its clip, the clip's full copies, its excerpt if inside."""
    src = query["video"]
    members = truth["groups"].get(src)
    if not members:
        return {src}
    ex = {e["video"]: e for e in truth["excerpts"] if e["source"] == src}
    keep = {m for m in members if m not in ex}
    keep |= {v for v, e in ex.items() if e["in_source"][0] <= query["t"] < e["in_source"][1]}
    return keep


GOALS = {"precision": 0.95, "recall": 0.95, "excerpt_iou": 0.8, "image_r1": 0.9}


def format_table(result: dict) -> str:
    """Markdown: one row per ``min_seconds`` for copies, one per search configuration for image queries."""
    lines = [
        "| min seconds | pairs found | true pairs | precision | recall | false pairs (order partners) "
        "| recall crf / scale / crop / fps / fade / excerpt | kind as expected | excerpt IoU mean (min) | align s |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in result["copies"]:
        by = " / ".join(f"{r['recall_by_kind'][k]:.2f}" for k in (*FULL_COPIES, "excerpt"))
        iou_ = r["excerpt_iou"]
        lines.append(
            f"| {r['min_seconds']:g} | {r['found']} | {r['true']} | {r['precision']:.3f} | {r['recall']:.3f} "
            f"| {r['false_positives']} ({r['false_order_partners']}) | {by} | {r['kind_agreement']:.3f} "
            f"| {iou_['mean']:.3f} ({iou_['min']:.3f}) | {r['align_s']} |"
        )
    lines += [
        "",
        "| image query search | queries | R@1 | R@1, clips with no copy | moment holds the frame | ms / query |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in result["images"].items():
        lines.append(
            f"| {name} | {r['queries']} | {r['r1']:.3f} | {r['r1_uncopied']:.3f} | {r['moment']:.3f} "
            f"| {r['ms_per_query']} |"
        )
    c = result["clips"]
    lines += [
        "",
        "| video-clip query (10 s of a source) | queries | R@1 (group) | excerpt video in top 10 | its segment IoU "
        "| source segment IoU | ms / query |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| search_clip | {c['queries']} | {c['r1']:.3f} | {c['excerpt_in_top10']:.3f} | {c['excerpt_iou']:.3f} "
        f"| {c['source_iou']:.3f} | {c['ms_per_query']} |",
    ]
    probe = result["copies"][0]["probe_s"] if result["copies"] else 0
    lines.append(
        f"\n{result['videos']} videos ({result['sampling']}), indexed in {result['index_s']} s; "
        f"frame ANN probe {probe} s; params {result['params']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="the copy table: copies, excerpts and image queries on the testbed")
    p.add_argument("--out", type=Path, default=Path("/tmp/vidseek-testbed/copies"))
    p.add_argument("--store", default=None, help="default: OUT/store.db")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--n-sources", type=int, default=20)
    p.add_argument("--world-a", type=int, nargs=3, default=[30, 10, 10], metavar=("CONTENT", "ORDER", "BRIEF"))
    p.add_argument("--world-b", type=int, nargs=3, default=[20, 5, 5], metavar=("CONTENT", "ORDER", "BRIEF"))
    p.add_argument("--sampling", default="fps:2")
    p.add_argument("--min-seconds", type=float, nargs="+", default=[5.0, 8.0])
    p.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    a = p.parse_args(argv)
    if not (a.out / "truth.json").exists():
        build_copy_set(a.out, a.seed, a.n_sources, tuple(a.world_a), tuple(a.world_b))
    result = evaluate_copy_set(a.out, a.store or str(a.out / "store.db"), a.sampling, tuple(a.min_seconds))
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))
    print(format_table(result))


if __name__ == "__main__":
    main()
