"""The ``vidseek`` command line (typer): index, search (text, image, clip), rerank, eval, eval-run, models, info,
demo, serve; train, import-clip4clip, copies and testbed from their modules."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from vidseek.apps.cli import by_example, copies, testbed, train
from vidseek.apps.cli.common import fail, open_searcher, quiet_logs, warn
from vidseek.apps.cli.config import config_option
from vidseek.apps.cli.options import CLIP, INDEX, MODEL_HELP, PRETRAINED_HELP, SEARCH, derived
from vidseek.retrieval.params import IMAGE_WEIGHT

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="vidseek: index videos with CLIP on Ray, store vectors in Milvus, search them with text.",
)


@app.command()
@derived
def index(
    config: Optional[Path] = config_option(),
    cfg=INDEX.fields(),
    as_json: bool = typer.Option(False, "--json", help="print the summary as one JSON object"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Index SOURCE into STORE (resumable: finished videos are skipped, changed files replaced)."""
    quiet_logs(verbose)
    from vidseek.operators.models import ModelLoadError
    from vidseek.pipeline.index_job import IndexConfig, JobError, run_index
    from vidseek.pipeline.sources import SourceError
    from vidseek.pipeline.specs import JobHooks
    from vidseek.store.video_store import StoreError

    cfg = IndexConfig(**cfg, progress=not as_json and sys.stderr.isatty())
    try:
        # a test's hooks (VIDSEEK_FAULT, VIDSEEK_PLACEMENT_DIR) are read here, at the entry point, never in the job
        summary = run_index(cfg, hooks=JobHooks.from_env())
    except (SourceError, StoreError, ModelLoadError, JobError, ValueError) as e:
        fail(str(e))
    if as_json:
        typer.echo(json.dumps(summary.as_dict()))
    else:
        typer.echo(summary.render())
    if summary.stopped_early:
        raise typer.Exit(1)


@app.command()
@derived
def search(
    config: Optional[Path] = config_option(),
    query: Optional[str] = typer.Argument(None, help="text query (with --image: fused with the image)"),
    store=INDEX.field("store"),
    params=SEARCH.fields(),
    image: Optional[Path] = typer.Option(
        None, "--image", dir_okay=False, help="query image (JPEG, PNG or WebP): videos with frames like it"
    ),
    image_weight: float = typer.Option(
        IMAGE_WEIGHT, "--image-weight", help="the image's share when TEXT is given too (0: text only, 1: image only)"
    ),
    video: Optional[Path] = typer.Option(
        None, "--video", dir_okay=False, help="query clip: videos holding it, with the aligned segments"
    ),
    start: Optional[float] = typer.Option(None, "--start", help="--video: search with the clip from here (s)"),
    end: Optional[float] = typer.Option(None, "--end", help="--video: up to here (s)"),
    clip=CLIP.fields(),
    decode_timeout=INDEX.field(
        "decode_timeout_s",
        help="--video: most seconds the clip may take to decode, plus --decode-timeout-per-s × its duration",
    ),
    decode_timeout_per_s=INDEX.field("decode_timeout_per_s", help="--video: seconds allowed per second of the clip"),
    filter: list[str] = typer.Option([], "--filter", help="metadata filter key=value (repeatable; typed, quoted)"),
    as_json: bool = typer.Option(False, "--json"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Search STORE with a text query, an image (--image, alone or with TEXT) or a clip (--video): one hit
    per video with its best moment (a clip: the aligned segment in the video and in the clip)."""
    quiet_logs(verbose)
    from vidseek.operators.isolated_decode import DecodeLimit
    from vidseek.retrieval.params import ClipSearchParams
    from vidseek.retrieval.search import SearchParams
    from vidseek.store.filters import all_of, parse_user_filter
    from vidseek.store.video_store import StoreError

    searcher = None
    try:
        expr = all_of(*[parse_user_filter(f) for f in filter])
        checked = SearchParams(**params, filter=expr).validate()  # before the store opens: a bad value says so
        by_example.check_example_args(query, image, video, start, end, image_weight)
        clip_params = ClipSearchParams(k=checked.k, filter=expr, **clip).validate()
        limit = DecodeLimit(decode_timeout, decode_timeout_per_s)
        searcher = open_searcher(store)
        if video is not None:
            out, text = by_example.clip_result(searcher, video, start, end, clip_params, limit)
        elif image is not None:
            out, hits, label = by_example.image_result(searcher, image, query, image_weight, checked)
            text = format_hits(query, hits, header=label)
        else:
            hits = searcher.search(query, checked)
            out, text = {"query": query, "hits": [h.as_dict() for h in hits]}, format_hits(query, hits)
    except (StoreError, ValueError) as e:
        fail(str(e))
    finally:
        if searcher is not None:
            searcher.store.close()
    typer.echo(json.dumps(out) if as_json else text)


def format_hits(query: str | None, hits: list, header: str | None = None) -> str:
    lines = [header or f"query: {query!r}"]
    if not hits:
        lines.append("  (no hits)")
    for i, h in enumerate(hits, 1):
        lines.append(
            f"  {i:2d}. {h.score:7.4f}  {Path(h.path).name}  moment {h.moment[0]:.1f}–{h.moment[1]:.1f} s "
            f"(best {h.best_t:.1f} s)"
        )
    return "\n".join(lines)


@app.command("rerank")
@derived
def rerank_cmd(
    run: Path = typer.Option(..., exists=True, dir_okay=False, help="TREC run (qid Q0 docid rank score tag) or JSONL"),
    out: Path = typer.Option(..., help="output run, same format as RUN, ranks rewritten"),
    queries: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="TSV qid<TAB>text or TREC topics"),
    store: Optional[str] = typer.Option(None, help="take frame vectors of indexed videos from this store"),
    video_root: Optional[Path] = typer.Option(None, file_okay=False, help="decode unindexed candidates from here"),
    model=INDEX.field("model", help="model when no store is given (a store knows its own); " + MODEL_HELP),
    pretrained=INDEX.field("pretrained"),
    sampling=INDEX.field("sampling", help="frame sampling for videos decoded on the fly"),
    alpha=SEARCH.field("alpha", help="weight of the run's own score"),
    depth=SEARCH.field("depth", help="candidates rescored per query"),
    cache_dir: Optional[Path] = typer.Option(None, help="frame-vector cache (default ~/.cache/vidseek/frames)"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """CLIPRerank another system's result list with CLIP frame evidence (no vidseek index needed)."""
    quiet_logs(verbose)
    from vidseek.operators.encode import load_clip
    from vidseek.operators.model_stamp import random_weights_warning
    from vidseek.operators.models import ModelLoadError
    from vidseek.retrieval.rerank import DEFAULT_CACHE, FrameEvidence, rerank_run
    from vidseek.retrieval.runfiles import read_queries, read_run, write_run
    from vidseek.store.video_store import StoreError, VideoStore

    if store is None and video_root is None:
        fail("give --store, --video-root, or both (candidates need frame evidence from somewhere)")
    vs = None
    try:
        run_queries, fmt = read_run(run)
        texts = read_queries(queries) if queries else None
        if store is not None:
            vs = VideoStore(store)
            vs.require_ready()
            stamp = vs.model_stamp()
            model, pretrained = stamp["model"], stamp.get("pretrained")
        clip = load_clip(model, pretrained)
        warn(random_weights_warning(clip.stamp()))
        evidence = FrameEvidence(clip, vs, video_root, sampling, cache_dir or DEFAULT_CACHE)
        reranked, report = rerank_run(run_queries, evidence, alpha, depth, texts)
        write_run(out, reranked, fmt, tag="vidseek-rerank", score_from_rank=True)
    except (ValueError, StoreError, ModelLoadError, FileNotFoundError) as e:
        fail(str(e))
    finally:
        if vs is not None:
            vs.close()
    typer.echo(
        f"reranked {report.queries} queries ({report.rescored} candidates rescored; evidence "
        f"{report.evidence}); {len(report.without_evidence)} without evidence kept their rank → {out}"
    )


@app.command("eval")
@derived
def eval_cmd(
    dataset: Path = typer.Option(..., exists=True, dir_okay=False, help="MSR-VTT JSON, CSV or JSONL captions"),
    store=INDEX.field("store"),
    config: list[str] = typer.Option(
        [],
        "--config",
        help="mean | max | query-weighted[:tau] | learned, optionally +rerank (repeatable; default: a standard set)",
    ),
    split: Optional[str] = typer.Option(None, help="MSR-VTT JSON split (train/validate/test)"),
    depth=SEARCH.field("depth", help="rerank depth"),
    alpha=SEARCH.field("alpha"),
    out: Optional[Path] = typer.Option(None, help="write eval.md, eval.json and recall_at_k.png here"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """R@1/5/10, MdR, MnR of text→video retrieval per configuration (ties counted pessimistically)."""
    quiet_logs(False)
    from vidseek.retrieval.datasets import load_captions
    from vidseek.retrieval.evaluate import DEFAULT_CONFIGS, evaluate, markdown_table, parse_config, save_outputs
    from vidseek.store.video_store import StoreError

    try:
        configs = [parse_config(c, depth, alpha) for c in (config or DEFAULT_CONFIGS)]
        pairs = load_captions(dataset, split)
        searcher = open_searcher(store)
        rows = evaluate(searcher, pairs, configs, str(dataset))
        searcher.store.close()
    except (ValueError, StoreError, FileNotFoundError) as e:
        fail(str(e))
    if out:
        save_outputs(rows, out, title=f"{dataset.name} on {store}")
    if as_json:
        typer.echo(json.dumps([{"config": r.config, **r.metrics} for r in rows]))
    else:
        typer.echo(markdown_table(rows))


@app.command("eval-run")
def eval_run_cmd(
    run: Path = typer.Argument(..., exists=True, dir_okay=False),
    qrels: Path = typer.Argument(..., exists=True, dir_okay=False),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """MAP, nDCG@10 and P@10 of a TREC/JSONL run against qrels, computed by pytrec_eval (trec_eval)."""
    import pytrec_eval

    from vidseek.retrieval.runfiles import read_qrels, read_run, run_to_dict

    try:
        queries, _ = read_run(run)
        rels = read_qrels(qrels)
    except ValueError as e:
        fail(str(e))
    evaluator = pytrec_eval.RelevanceEvaluator(rels, {"map", "ndcg_cut.10", "P.10"})
    per_query = evaluator.evaluate(run_to_dict(queries))
    if not per_query:
        fail("no query of the run has judgments in the qrels")
    keys = {"map": "map", "ndcg_cut_10": "nDCG@10", "P_10": "P@10"}
    means = {name: float(np.mean([q[k] for q in per_query.values()])) for k, name in keys.items()}
    means["queries"] = len(per_query)
    typer.echo(
        json.dumps(means)
        if as_json
        else "\n".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in means.items())
    )


@app.command()
def models() -> None:
    """List model names: vidseek's registry first, then open_clip's architectures."""
    from vidseek.operators.models import get_model_entry, list_models

    for name in list_models():
        e = get_model_entry(name)
        typer.echo(f"{name:32s} {e.description or 'open_clip architecture (random weights without --pretrained)'}")


@app.command()
@derived
def info(store=INDEX.field("store"), as_json: bool = typer.Option(False, "--json")):
    """What a store holds: model stamp, videos by status, frames."""
    quiet_logs(False)
    from vidseek.store.video_store import StoreError, VideoStore

    try:
        with VideoStore(store) as s:
            recs = s.video_records(fields=["video_id", "status"])
            out = {
                "store": store,
                "model": s.model_stamp(),
                "videos": len(recs),
                "ok": sum(r["status"] == "ok" for r in recs),
                "failed": sum(r["status"] == "failed" for r in recs),
                "frames": s.count_frames() if s.dim else 0,
                "thinning": s.thinning(),
            }
    except StoreError as e:
        fail(str(e))
    typer.echo(json.dumps(out) if as_json else "\n".join(f"{k}: {v}" for k, v in out.items()))


@app.command()
@derived
def thin(
    store=INDEX.field("store"),
    threshold: float = typer.Option(..., help="cosine in (0, 1]: 1 merges exact duplicates, 0.95 near-duplicates"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Merge consecutive near-duplicate frame rows of a store in place (no decoding, no re-encoding)."""
    quiet_logs(False)
    from tqdm import tqdm

    from vidseek.store.thin import thin_store
    from vidseek.store.video_store import StoreError, VideoStore

    try:
        with VideoStore(store) as s:
            s.require_ready()
            n = s.count(filter='status == "ok"')
            with tqdm(total=n, unit="video", disable=as_json or not sys.stderr.isatty()) as bar:
                report = thin_store(s, threshold, progress=bar.update)
    except (StoreError, ValueError) as e:
        fail(str(e))
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    else:
        typer.echo(
            f"thinned {report.videos} videos at cosine ≥ {report.threshold:g}: {report.rows_before} frame rows → "
            f"{report.rows_after} ({report.ratio:.2f}× fewer)"
        )


@app.command()
def demo(
    store: str = typer.Option("./vidseek-demo.db", help=INDEX.help("store")),
    library: Path = typer.Option(Path("./vidseek-demo-library"), help="where the demo's generated clips go"),
    model: str = typer.Option(
        "testbed",
        help="registry name (testbed: a tiny CLIP trained offline on the synthetic world only, not a general model)",
    ),
) -> None:
    """Index a demo library on local Ray + Milvus Lite (the bundled sample videos plus a few clips of the
    synthetic testbed world), then search it with the testbed world's own queries."""
    quiet_logs(False)
    from vidseek.apps.cli.samples import sample_videos
    from vidseek.apps.testbed.world import generate_world
    from vidseek.pipeline.index_job import IndexConfig, run_index

    world = library / "testbed"
    if not (world / "queries.jsonl").exists():
        generate_world(world, seed=7, n_content=6, n_brief=3, n_order=2)
    queries = [json.loads(line) for line in (world / "queries.jsonl").read_text().splitlines() if line.strip()]
    listing = library / "videos.txt"
    videos = [str(p) for p in sample_videos()] + sorted(str(p.absolute()) for p in world.glob("*.mp4"))
    listing.write_text("\n".join(videos) + "\n")
    typer.echo(f"indexing {len(videos)} videos ({listing}) into {store} with model {model} …")
    summary = run_index(
        IndexConfig(source=str(listing), store=store, model=model, sampling="fps:2", progress=sys.stderr.isatty())
    )
    typer.echo(summary.render())
    searcher = open_searcher(store)
    picks = [next(q for q in queries if q["family"] == f) for f in ("content", "brief", "order")]
    for q in picks:
        hits = searcher.search(q["query"], k=3)
        found = next((i for i, h in enumerate(hits, 1) if Path(h.path).name == Path(q["video"]).name), None)
        typer.echo(format_hits(q["query"], hits))
        typer.echo(f"     [{q['family']}] expected {q['video']}: " + (f"rank {found}" if found else "not in top 3"))
    searcher.store.close()


def _check_serve_options(host: str, token: str | None, ingest_roots: list[Path], two_frame_sources: bool) -> None:
    """Refuse a short token, a non-loopback address without one, an ingest root that is no directory, and
    both --in-memory and --frame-mirror."""
    if two_frame_sources:
        fail("--frame-mirror and --in-memory both replace where rescoring reads frames: choose one")
    from vidseek.apps.service.auth import is_loopback

    if token is not None and len(token) < 16:
        fail(
            "the token is too short (16+ characters): make one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    if not is_loopback(host) and not token:
        fail(
            f"refusing to bind {host} without a token: anyone who can reach it could search and read your "
            "videos. Pass --token (or set VIDSEEK_TOKEN), or bind 127.0.0.1 (the default)"
        )
    for root in ingest_roots:
        if not root.is_dir():
            fail(f"--ingest-root {root}: not a directory")


def _service_app(store: str, **options):
    """The service's app for ``store`` (``create_app``), or one line that says why it cannot start."""
    from vidseek.apps.service import create_app
    from vidseek.store.video_store import StoreBusyError, StoreError

    try:
        return create_app(store, **options)
    except StoreBusyError as e:
        fail(
            f"cannot serve {store}: another process holds it (an index job or another service?). Milvus "
            "Lite allows one process per store: wait for the job to finish, or stop it and index through "
            f"this service instead (start it, then POST /ingest), or use a Milvus server URI. "
            f"({e.__cause__.__class__.__name__}: {e.__cause__})"
        )
    except StoreError as e:
        fail(str(e))
    except Exception as e:  # noqa: BLE001 — the model may fail to load (its message says what to do)
        from vidseek.operators.models import ModelLoadError

        if isinstance(e, ModelLoadError):
            fail(str(e))
        raise


# where `serve` rescoring reads frames (module level: the command's option list stays short)
IN_MEMORY_OPTION = typer.Option(
    False,
    "--in-memory",
    help="hold the store's vectors in this process and search them there: much faster on a large Milvus Lite "
    "store (bench/search_latency.py), costs ~2 KB of RAM per frame vector (ViT-B-32)",
)
FRAME_MIRROR_OPTION = typer.Option(
    None,
    "--frame-mirror",
    file_okay=False,
    help="directory for a local copy of the store's frame vectors that rescoring reads instead of the store: "
    "much faster on a Milvus server (bench/search_latency.py); ~2 KB of disk per frame vector (ViT-B-32), "
    "synced at start and every --mirror-sync seconds",
)
MIRROR_SYNC_OPTION = typer.Option(
    60.0, "--mirror-sync", min=0, help="seconds between frame-mirror syncs (0: at start only)"
)


@app.command()
@derived
def serve(
    config: Optional[Path] = config_option(),
    store=INDEX.field("store"),
    host: str = typer.Option("127.0.0.1", help="address to bind; anything but loopback needs --token"),
    port: int = typer.Option(8000, min=0, max=65535),
    token: Optional[str] = typer.Option(
        None,
        envvar="VIDSEEK_TOKEN",
        show_default=False,
        help="bearer token every request must carry (prefer the VIDSEEK_TOKEN "
        "environment variable: arguments show up in `ps`)",
    ),
    ingest_root: list[Path] = typer.Option(
        [],
        "--ingest-root",
        file_okay=False,
        help="directory POST /ingest may index from (repeatable; none: ingest off)",
    ),
    model=INDEX.field("model", help="model for ingesting into an empty store (a store knows its own); " + MODEL_HELP),
    pretrained=INDEX.field("pretrained", help="empty store only; " + PRETRAINED_HELP),
    storage_options=INDEX.field("storage_options", help="videos indexed by URL: fsspec options (JSON), as for index"),
    lock_wait: float = typer.Option(3.0, help="seconds to wait for a store held by another process"),
    in_memory: bool = IN_MEMORY_OPTION,
    frame_mirror: Path = FRAME_MIRROR_OPTION,
    mirror_sync: float = MIRROR_SYNC_OPTION,
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Serve STORE over HTTP: search API, thumbnails, video playback, ingest jobs, and a search page at /."""
    quiet_logs(verbose)
    _check_serve_options(host, token, ingest_root, in_memory and bool(frame_mirror))
    import uvicorn

    from vidseek.apps.service.auth import RedactTokens, is_loopback

    allowed = {"localhost", "127.0.0.1", "::1", host.strip("[]").lower()} if is_loopback(host) else None
    api = _service_app(
        store,
        token=token,
        ingest_roots=[str(r) for r in ingest_root],
        model=model,
        pretrained=pretrained,
        allowed_hosts=allowed,
        lock_wait_s=lock_wait,
        in_memory=in_memory,
        storage_options=storage_options,
        frame_mirror=str(frame_mirror) if frame_mirror else None,
        mirror_sync_s=mirror_sync,
    )
    if api.state.service.store.dim is not None:
        warn(api.state.service.searcher().model_warning)  # built at start-up: the store's model is loaded
    logging.getLogger("uvicorn.access").addFilter(RedactTokens())
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    typer.echo(f"serving {store} on {url}" + (" (token required)" if token else ""), err=True)
    try:
        uvicorn.run(
            api,
            host=host,
            port=port,
            log_level="info" if verbose else "warning",
            server_header=False,
            access_log=verbose,
            timeout_graceful_shutdown=5,
        )
    finally:
        api.state.service.close()


# the head's and the testbed's commands, listed after these in `vidseek --help`
app.command()(train.train)
app.command("import-clip4clip")(train.import_clip4clip_cmd)
app.command("copies")(copies.copies)
app.add_typer(testbed.testbed_app, name="testbed")


def main() -> None:
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    app()


if __name__ == "__main__":
    main()
