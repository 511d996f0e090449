"""In-memory quality table for the testbed world: the methods compared over the same vectors, no store
(``store_eval.py`` measures the same through the real index job and Milvus).

    python -m vidseek.apps.testbed.quality --world /tmp/vidseek-testbed/eval --seed 7

Decodes every eval clip with ``vidseek.operators.decode`` (``fps:2`` by default), encodes frames and queries with
``load_clip("testbed")`` once, and scores every (query, video) pair of the whole gallery with each method
over *the same vectors*:

- ``mean``: CLIP4Clip meanP (``vidseek.operators.aggregate.mean_score``: normalise frames, mean, normalise);
- ``max``: max over frames of cos(q, frame);
- ``qw τ=…``: CLIP-Hitchhiker query-weighted pooling at τ ∈ {0.01, 0.05, 0.1, 0.2, 0.5, 1};
- ``mean + CLIPRerank k=…``: per query, the top-k videos by mean are re-scored with
  α · minmax(mean) + (1 − α) · minmax(max), α = 0.4 (min-max over that top-k); the rest keep their mean
  order below (``vidseek.retrieval.fusion.rerank_matrix``, the search path's own fusion). ``--alphas`` adds rows.

Ranks and R@K come from ``vidseek.retrieval.metrics`` (1-based, pessimistic ties).
Per family: R@1/5/10 (%), median rank; for ``order`` also pair accuracy: the share of queries whose clip
scores strictly above its reversed partner.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from vidseek.apps.testbed.world import generate_world, load_manifest
from vidseek.operators.aggregate import max_score, mean_score, pad_frames, query_weighted_score
from vidseek.operators.encode import encode_texts, load_clip
from vidseek.operators.file_embedder import FileEmbedder
from vidseek.retrieval.fusion import rerank_matrix
from vidseek.retrieval.metrics import ranks_from_scores, retrieval_metrics

TAUS = (0.01, 0.05, 0.1, 0.2, 0.5, 1.0)
FAMILIES = ("content", "brief", "order")
EVAL_SEED = 7  # the training world uses 1000 + training seed


def encode_world(
    world_dir: Path, manifest: dict, clip, sampling: str = "fps:2", decoder_options: dict | None = None
) -> tuple[list, list]:
    """Per clip: video name and raw frame features [T_i, D] (float32)."""
    embed = FileEmbedder(clip, sampling, decoder_options=decoder_options)
    try:
        feats = [embed(Path(world_dir) / c["video"]) for c in manifest["clips"]]
    finally:
        embed.close()
    return [c["video"] for c in manifest["clips"]], feats


def method_scores(
    q: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor, taus=TAUS, rerank_ks=(20, None), alphas=(0.4,)
) -> dict[str, torch.Tensor]:
    """Every method's [Q, V] scores over the same query and frame vectors (α of CLIPRerank in the name
    unless it is the paper's 0.4)."""
    mean_s = mean_score(q, frames, mask)
    max_s = max_score(q, frames, mask)
    out = {"mean": mean_s, "max": max_s}
    for tau in taus:
        out[f"qw τ={tau:g}"] = query_weighted_score(q, frames, mask, tau=tau)
    for alpha in alphas:
        for k in rerank_ks:
            name = f"mean + CLIPRerank k={'all' if k is None else k}" + ("" if alpha == 0.4 else f" α={alpha:g}")
            out[name] = torch.from_numpy(rerank_matrix(mean_s.numpy(), max_s.numpy(), alpha, k))
    return out


def learned_scores(head_path: str | Path, clip, q: torch.Tensor, feats: list) -> torch.Tensor:
    """[Q, V] cosine of each query with each video's learned vector (the head run on its raw frame vectors,
    as the index job runs it)."""
    from vidseek.operators.heads import learned_vectors, load_head

    head, cfg = load_head(head_path, clip.stamp())
    vecs = torch.from_numpy(learned_vectors(head, feats, cfg["n_frames"]))  # [V, D]
    return torch.nn.functional.normalize(q, dim=-1) @ torch.nn.functional.normalize(vecs, dim=-1).T


def evaluate(
    world_dir: str | Path,
    model: str = "testbed",
    sampling: str = "fps:2",
    threads: int = 1,
    taus=TAUS,
    rerank_ks=(20, None),
    alphas=(0.4,),
    head: str | Path | None = None,
    decoder_options: dict | None = None,
) -> dict:
    torch.set_num_threads(threads)
    world_dir = Path(world_dir)
    manifest = load_manifest(world_dir)
    t0 = time.time()
    clip = load_clip(model, device="cpu")
    videos, feats = encode_world(world_dir, manifest, clip, sampling, decoder_options)
    t_encode = time.time() - t0
    frames, mask = pad_frames(feats, clip.embed_dim)  # [V, T, D], [V, T]
    queries = manifest["queries"]
    q = torch.from_numpy(encode_texts(clip, [x["query"] for x in queries]))  # [Q, D]
    vid = {v: i for i, v in enumerate(videos)}
    gt = torch.tensor([vid[x["video"]] for x in queries])
    fam = np.array([x["family"] for x in queries])
    partner = torch.tensor([vid.get(x.get("partner", x["video"])) for x in queries])
    results = {
        "world": str(world_dir),
        "seed": manifest["seed"],
        "model": model,
        "sampling": sampling,
        "n_videos": len(videos),
        "n_frames": int(mask.sum()),
        "encode_s": round(t_encode, 1),
        "alphas": list(alphas),
        "methods": {},
    }
    scores = method_scores(q, frames, mask, taus, rerank_ks, alphas)
    if head:
        scores["learned"] = learned_scores(head, clip, q, feats)
    for name, s in scores.items():
        r = ranks_from_scores(s.numpy(), gt.numpy())
        row = {f: retrieval_metrics(r[fam == f]) for f in FAMILIES if (fam == f).any()}
        if "order" in row:
            sel = torch.from_numpy(fam == "order")
            s_gt = s.gather(1, gt[:, None])[:, 0][sel]
            s_pa = s.gather(1, partner[:, None])[:, 0][sel]
            row["order"]["pair"] = 100 * float((s_gt > s_pa).float().mean())
        results["methods"][name] = row
    return results


def format_table(results: dict) -> str:
    fams = [f for f in FAMILIES if any(f in row for row in results["methods"].values())]
    head = ["method"]
    for f in fams:
        head += [f"{f} R@1", "R@5", "R@10", "MdR"] + (["pair"] if f == "order" else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in results["methods"].items():
        cells = [name]
        for f in fams:
            m = row[f]
            cells += [f"{m['R@1']:.1f}", f"{m['R@5']:.1f}", f"{m['R@10']:.1f}", f"{m['MdR']:g}"]
            if f == "order":
                cells.append(f"{m['pair']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    n = {f: next(iter(results["methods"].values()))[f]["n"] for f in fams}
    lines.append("")
    lines.append(
        f"gallery {results['n_videos']} videos, {results['n_frames']} frames ({results['sampling']}); "
        f"queries {n}; model {results['model']}; ranks 1-based, ties pessimistic"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--world",
        type=Path,
        default=Path("/tmp/vidseek-testbed/eval"),
        help="eval world directory (generated with --seed when it has no manifest.json)",
    )
    p.add_argument("--seed", type=int, default=EVAL_SEED)
    p.add_argument("--model", default="testbed")
    p.add_argument("--sampling", default="fps:2")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--alphas",
        type=float,
        nargs="+",
        default=[0.4],
        help="CLIPRerank weights of the first stage (0.4 = paper; more values add rows)",
    )
    p.add_argument("--head", type=Path, default=None, help="a trained temporal head: adds the learned row")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--decoder", default="auto", choices=["auto", "decord", "pyav"])
    p.add_argument("--skip-loop-filter", action="store_true", help="decode without the loop filter (PyAV)")
    a = p.parse_args(argv)
    if not (a.world / "manifest.json").exists():
        t0 = time.time()
        generate_world(a.world, a.seed)
        print(f"generated eval world seed {a.seed} in {a.world} ({time.time() - t0:.0f}s)", flush=True)
    elif load_manifest(a.world)["seed"] != a.seed:
        raise SystemExit(
            f"{a.world} holds the world of seed {load_manifest(a.world)['seed']}, not {a.seed}: "
            "pass that seed or another --world directory"
        )
    options = {"backend": a.decoder, "skip_loop_filter": a.skip_loop_filter}
    res = evaluate(
        a.world, a.model, a.sampling, a.threads, alphas=tuple(a.alphas), head=a.head, decoder_options=options
    )
    print(format_table(res))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
