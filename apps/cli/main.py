"""The ``vidseek`` command line (typer): index, search, rerank, eval, eval-run, models, info, demo."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from vidseek.apps.cli.config import config_option
from vidseek.pipeline.index_config import IndexConfig as IX  # index defaults (light module)
from vidseek.retrieval.params import DEFAULTS as D


def _one_of(value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
    return value


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="vidseek: index videos with CLIP on Ray, store vectors in Milvus, search them with text.",
)

STORE_HELP = "Milvus Lite path (a directory) or Milvus server URI (http://host:19530)"
MODEL_HELP = (
    "registry name or open_clip architecture (see `vidseek models`). The default, tiny-random, has random "
    "weights and finds nothing (tests and smoke runs); for real search pass an open_clip architecture with "
    "trained weights, e.g. --model ViT-B-32 --pretrained /path/to/open_clip_model.safetensors (or "
    "--pretrained laion2b_s34b_b79k where the model hub is reachable)"
)
PRETRAINED_HELP = (
    "weights for --model: an open_clip tag (downloaded from the model hub), a local checkpoint path, or "
    "'none' (random weights); default: the registry's (open_clip architectures: none)"
)


def _fail(msg: str, code: int = 2) -> None:
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(code)


def _warn(message: str | None) -> None:
    """One ``warning: …`` line on stderr (stdout stays the command's output, JSON with --json)."""
    if message:
        typer.secho(f"warning: {message}", fg="yellow", err=True)


def _open_searcher(store: str):
    """A Searcher over STORE; a store whose model has random weights gets one warning line on stderr."""
    from vidseek.retrieval.search import Searcher

    searcher = Searcher(store, warn=False)
    _warn(searcher.model_warning)
    return searcher


def _quiet_logs(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("milvus_lite", "faiss", "ray"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)
    # pymilvus logs every failed RPC at ERROR while the store retries; the store's own error says what failed
    logging.getLogger("pymilvus").setLevel(logging.INFO if verbose else logging.CRITICAL)


@app.command()
def index(
    config: Optional[Path] = config_option(),
    source: str = typer.Argument(..., help="directory (recursive), glob, video file, or list file (.txt/.csv/.jsonl)"),
    store: str = typer.Option(IX.store, help=STORE_HELP),
    model: str = typer.Option(IX.model, help=MODEL_HELP),
    pretrained: Optional[str] = typer.Option(None, help=PRETRAINED_HELP),
    sampling: str = typer.Option(IX.sampling, help="fps:R | uniform:N | keyframes"),
    address: Optional[str] = typer.Option(None, help="Ray address: 'auto' or ray://host:10001 (default: local Ray)"),
    prune: bool = typer.Option(False, help="remove rows of files no longer in SOURCE"),
    retry_failed: bool = typer.Option(False, help="re-attempt videos recorded as failed"),
    max_failures: Optional[int] = typer.Option(None, help="stop once more than this many videos failed"),
    chunk_frames: int = typer.Option(IX.chunk_frames, help="most frames per decoded batch (bounds memory)"),
    decoder: str = typer.Option(
        IX.decoder,
        callback=lambda v: _one_of(v, ("auto", "decord", "pyav")),
        help="auto: the faster per codec (PyAV for H.264/HEVC, decord for VP9/AV1), the other as fallback",
    ),
    skip_loop_filter: bool = typer.Option(
        IX.skip_loop_filter, help="decode without the loop filter (PyAV): less CPU, slightly different pixels"
    ),
    decode_timeout: float = typer.Option(
        IX.decode_timeout_s,
        help="most seconds one video may take to decode, plus "
        "--decode-timeout-per-s × its duration; then it is recorded failed",
    ),
    decode_timeout_per_s: float = typer.Option(
        IX.decode_timeout_per_s, help="seconds allowed per second of video (see --decode-timeout)"
    ),
    head: Optional[Path] = typer.Option(
        None,
        help="a learned head (HEAD.pt from `vidseek train`): also write learned video vectors "
        "(videos already indexed get them from their stored frames)",
    ),
    merge_similar: Optional[float] = typer.Option(
        None,
        help="thin: merge consecutive frames whose cosine to a run's first is ≥ this (0.95: near-duplicates) "
        "into one row spanning them; default: the store's recorded threshold, or none",
    ),
    frame_index: Optional[str] = typer.Option(
        None,
        help="a new store's frame index: HNSW (default), IVF_FLAT, IVF_SQ8, IVF_PQ or DISKANN (compressed, "
        "for large libraries on a Milvus server; docs/scale.md)",
    ),
    device: str = typer.Option(IX.device, help="auto | cpu | cuda"),
    store_retry: float = typer.Option(
        IX.store_retry_s, help="server stores: seconds to wait for a server that stops answering"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the summary as one JSON object"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Index SOURCE into STORE (resumable: finished videos are skipped, changed files replaced)."""
    _quiet_logs(verbose)
    from vidseek.operators.models import ModelLoadError
    from vidseek.pipeline.index_job import IndexConfig, JobError, run_index
    from vidseek.pipeline.sources import SourceError
    from vidseek.store.video_store import StoreError

    cfg = IndexConfig(
        source=source,
        store=store,
        model=model,
        pretrained=pretrained,
        sampling=sampling,
        address=address,
        prune=prune,
        retry_failed=retry_failed,
        max_failures=max_failures,
        chunk_frames=chunk_frames,
        decoder=decoder,
        skip_loop_filter=skip_loop_filter,
        device=device,
        progress=not as_json and sys.stderr.isatty(),
        head=str(head) if head else None,
        decode_timeout_s=decode_timeout,
        decode_timeout_per_s=decode_timeout_per_s,
        store_retry_s=store_retry,
        merge_similar=merge_similar,
        frame_index=frame_index,
    )
    try:
        summary = run_index(cfg)
    except (SourceError, StoreError, ModelLoadError, JobError, ValueError) as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(summary.as_dict()))
    else:
        typer.echo(summary.render())
    if summary.stopped_early:
        raise typer.Exit(1)


@app.command()
def search(
    config: Optional[Path] = config_option(),
    query: str = typer.Argument(..., help="text query"),
    store: str = typer.Option(IX.store, help=STORE_HELP),
    k: int = typer.Option(D.k, help="hits to return"),
    aggregation: str = typer.Option(D.aggregation, help="mean | max | query-weighted | learned"),
    tau: float = typer.Option(D.tau, help="query-weighted pooling temperature"),
    rerank: bool = typer.Option(
        D.rerank, "--rerank/--no-rerank", help="CLIPRerank fusion with max-pooled frame scores"
    ),
    alpha: float = typer.Option(D.alpha, help="CLIPRerank weight of the first-stage score"),
    depth: int = typer.Option(D.depth, help="candidates per stage and rerank depth"),
    filter: list[str] = typer.Option([], "--filter", help="metadata filter key=value (repeatable; typed, quoted)"),
    as_json: bool = typer.Option(False, "--json"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Search STORE with a text query: one hit per video with its best moment."""
    _quiet_logs(verbose)
    from vidseek.retrieval.search import SearchParams
    from vidseek.store.filters import all_of, parse_user_filter
    from vidseek.store.video_store import StoreError

    try:
        expr = all_of(*[parse_user_filter(f) for f in filter])
        params = SearchParams(
            k=k, aggregation=aggregation, tau=tau, rerank=rerank, alpha=alpha, depth=depth, filter=expr
        ).validate()
        hits = _open_searcher(store).search(query, params)
    except (StoreError, ValueError) as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps({"query": query, "hits": [h.as_dict() for h in hits]}))
        return
    typer.echo(format_hits(query, hits))


def format_hits(query: str, hits: list) -> str:
    lines = [f"query: {query!r}"]
    if not hits:
        lines.append("  (no hits)")
    for i, h in enumerate(hits, 1):
        lines.append(
            f"  {i:2d}. {h.score:7.4f}  {Path(h.path).name}  moment {h.moment[0]:.1f}–{h.moment[1]:.1f} s "
            f"(best {h.best_t:.1f} s)"
        )
    return "\n".join(lines)


@app.command("rerank")
def rerank_cmd(
    run: Path = typer.Option(..., exists=True, dir_okay=False, help="TREC run (qid Q0 docid rank score tag) or JSONL"),
    out: Path = typer.Option(..., help="output run, same format as RUN, ranks rewritten"),
    queries: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="TSV qid<TAB>text or TREC topics"),
    store: Optional[str] = typer.Option(None, help="take frame vectors of indexed videos from this store"),
    video_root: Optional[Path] = typer.Option(None, file_okay=False, help="decode unindexed candidates from here"),
    model: str = typer.Option(IX.model, help="model when no store is given (a store knows its own); " + MODEL_HELP),
    pretrained: Optional[str] = typer.Option(None, help=PRETRAINED_HELP),
    sampling: str = typer.Option(IX.sampling, help="frame sampling for videos decoded on the fly"),
    alpha: float = typer.Option(D.alpha, help="weight of the run's own score"),
    depth: int = typer.Option(D.depth, help="candidates rescored per query"),
    cache_dir: Optional[Path] = typer.Option(None, help="frame-vector cache (default ~/.cache/vidseek/frames)"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """CLIPRerank another system's result list with CLIP frame evidence (no vidseek index needed)."""
    _quiet_logs(verbose)
    from vidseek.operators.encode import load_clip
    from vidseek.operators.model_stamp import random_weights_warning
    from vidseek.operators.models import ModelLoadError
    from vidseek.retrieval.rerank import DEFAULT_CACHE, FrameEvidence, rerank_run
    from vidseek.retrieval.runfiles import read_queries, read_run, write_run
    from vidseek.store.video_store import StoreError, VideoStore

    if store is None and video_root is None:
        _fail("give --store, --video-root, or both (candidates need frame evidence from somewhere)")
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
        _warn(random_weights_warning(clip.stamp()))
        evidence = FrameEvidence(clip, vs, video_root, sampling, cache_dir or DEFAULT_CACHE)
        reranked, report = rerank_run(run_queries, evidence, alpha, depth, texts)
        write_run(out, reranked, fmt, tag="vidseek-rerank", score_from_rank=True)
    except (ValueError, StoreError, ModelLoadError, FileNotFoundError) as e:
        _fail(str(e))
    finally:
        if vs is not None:
            vs.close()
    typer.echo(
        f"reranked {report.queries} queries ({report.rescored} candidates rescored; evidence "
        f"{report.evidence}); {len(report.without_evidence)} without evidence kept their rank → {out}"
    )


@app.command("eval")
def eval_cmd(
    dataset: Path = typer.Option(..., exists=True, dir_okay=False, help="MSR-VTT JSON, CSV or JSONL captions"),
    store: str = typer.Option(IX.store, help=STORE_HELP),
    config: list[str] = typer.Option(
        [],
        "--config",
        help="mean | max | query-weighted[:tau] | learned, optionally +rerank (repeatable; default: a standard set)",
    ),
    split: Optional[str] = typer.Option(None, help="MSR-VTT JSON split (train/validate/test)"),
    depth: int = typer.Option(D.depth, help="rerank depth"),
    alpha: float = typer.Option(D.alpha, help="CLIPRerank weight of the first-stage score"),
    out: Optional[Path] = typer.Option(None, help="write eval.md, eval.json and recall_at_k.png here"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """R@1/5/10, MdR, MnR of text→video retrieval per configuration (ties counted pessimistically)."""
    _quiet_logs(False)
    from vidseek.retrieval.datasets import load_captions
    from vidseek.retrieval.evaluate import DEFAULT_CONFIGS, evaluate, markdown_table, parse_config, save_outputs
    from vidseek.store.video_store import StoreError

    try:
        configs = [parse_config(c, depth, alpha) for c in (config or DEFAULT_CONFIGS)]
        pairs = load_captions(dataset, split)
        searcher = _open_searcher(store)
        rows = evaluate(searcher, pairs, configs, str(dataset))
        searcher.store.close()
    except (ValueError, StoreError, FileNotFoundError) as e:
        _fail(str(e))
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
        _fail(str(e))
    evaluator = pytrec_eval.RelevanceEvaluator(rels, {"map", "ndcg_cut.10", "P.10"})
    per_query = evaluator.evaluate(run_to_dict(queries))
    if not per_query:
        _fail("no query of the run has judgments in the qrels")
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
def info(store: str = typer.Option(IX.store, help=STORE_HELP), as_json: bool = typer.Option(False, "--json")):
    """What a store holds: model stamp, videos by status, frames."""
    _quiet_logs(False)
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
        _fail(str(e))
    typer.echo(json.dumps(out) if as_json else "\n".join(f"{k}: {v}" for k, v in out.items()))


@app.command()
def thin(
    store: str = typer.Option(IX.store, help=STORE_HELP),
    threshold: float = typer.Option(..., help="cosine in (0, 1]: 1 merges exact duplicates, 0.95 near-duplicates"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Merge consecutive near-duplicate frame rows of a store in place (no decoding, no re-encoding)."""
    _quiet_logs(False)
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
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    else:
        typer.echo(
            f"thinned {report.videos} videos at cosine ≥ {report.threshold:g}: {report.rows_before} frame rows → "
            f"{report.rows_after} ({report.ratio:.2f}× fewer)"
        )


@app.command()
def demo(
    store: str = typer.Option("./vidseek-demo.db", help=STORE_HELP),
    library: Path = typer.Option(Path("./vidseek-demo-library"), help="where the demo's generated clips go"),
    model: str = typer.Option(
        "testbed",
        help="registry name (testbed: a tiny CLIP trained offline on the synthetic world only, not a general model)",
    ),
) -> None:
    """Index a demo library on local Ray + Milvus Lite (the bundled sample videos plus a few clips of the
    synthetic testbed world), then search it with the testbed world's own queries."""
    _quiet_logs(False)
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
    searcher = _open_searcher(store)
    picks = [next(q for q in queries if q["family"] == f) for f in ("content", "brief", "order")]
    for q in picks:
        hits = searcher.search(q["query"], k=3)
        found = next((i for i, h in enumerate(hits, 1) if Path(h.path).name == Path(q["video"]).name), None)
        typer.echo(format_hits(q["query"], hits))
        typer.echo(f"     [{q['family']}] expected {q['video']}: " + (f"rank {found}" if found else "not in top 3"))
    searcher.store.close()


@app.command()
def serve(
    config: Optional[Path] = config_option(),
    store: str = typer.Option(IX.store, help=STORE_HELP),
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
    model: str = typer.Option(
        IX.model, help="model for ingesting into an empty store (a store knows its own); " + MODEL_HELP
    ),
    pretrained: Optional[str] = typer.Option(None, help="empty store only; " + PRETRAINED_HELP),
    lock_wait: float = typer.Option(3.0, help="seconds to wait for a store held by another process"),
    in_memory: bool = typer.Option(
        False,
        "--in-memory",
        help="hold the store's vectors in this process and "
        "search them there: much faster on a large Milvus Lite store (bench/"
        "search_latency.py), costs ~2 KB of RAM per frame vector (ViT-B-32)",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Serve STORE over HTTP: search API, thumbnails, video playback, ingest jobs, and a search page at /."""
    _quiet_logs(verbose)
    from vidseek.apps.service.auth import RedactTokens, is_loopback

    if token is not None and len(token) < 16:
        _fail(
            "the token is too short (16+ characters): make one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    loopback = is_loopback(host)
    if not loopback and not token:
        _fail(
            f"refusing to bind {host} without a token: anyone who can reach it could search and read your "
            "videos. Pass --token (or set VIDSEEK_TOKEN), or bind 127.0.0.1 (the default)"
        )
    for root in ingest_root:
        if not root.is_dir():
            _fail(f"--ingest-root {root}: not a directory")

    import uvicorn

    from vidseek.apps.service import create_app
    from vidseek.store.video_store import StoreBusyError, StoreError

    allowed = {"localhost", "127.0.0.1", "::1", host.strip("[]").lower()} if loopback else None
    try:
        api = create_app(
            store,
            token=token,
            ingest_roots=[str(r) for r in ingest_root],
            model=model,
            pretrained=pretrained,
            allowed_hosts=allowed,
            lock_wait_s=lock_wait,
            in_memory=in_memory,
        )
    except StoreBusyError as e:
        _fail(
            f"cannot serve {store}: another process holds it (an index job or another service?). Milvus "
            "Lite allows one process per store: wait for the job to finish, or stop it and index through "
            f"this service instead (start it, then POST /ingest), or use a Milvus server URI. "
            f"({e.__cause__.__class__.__name__}: {e.__cause__})"
        )
    except StoreError as e:
        _fail(str(e))
    except Exception as e:  # noqa: BLE001 — the model may fail to load (its message says what to do)
        from vidseek.operators.models import ModelLoadError

        if isinstance(e, ModelLoadError):
            _fail(str(e))
        raise
    if api.state.service.store.dim is not None:
        _warn(api.state.service.searcher().model_warning)  # built at start-up: the store's model is loaded
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


def main() -> None:
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    app()


from vidseek.apps.cli import testbed, train  # noqa: E402,F401 — register their commands on `app`

if __name__ == "__main__":
    # run through the importable module: that is where every command module registers its commands
    from vidseek.apps.cli.main import main as registered_main

    registered_main()
