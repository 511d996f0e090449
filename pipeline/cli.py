"""The ``vidseek`` command line (typer): index, search, models, demo, info."""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="vidseek: index videos with CLIP on Ray, store vectors in Milvus, search them with text.")

STORE_HELP = "Milvus Lite path (a directory) or Milvus server URI (http://host:19530)"


def _fail(msg: str, code: int = 2) -> None:
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(code)


def _quiet_logs(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("milvus_lite", "faiss", "ray", "pymilvus"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)


@app.command()
def index(
    source: str = typer.Argument(..., help="directory (recursive), glob, video file, or list file (.txt/.csv/.jsonl)"),
    store: str = typer.Option("./vidseek.db", help=STORE_HELP),
    model: str = typer.Option("tiny-random", help="registry name (see `vidseek models`)"),
    pretrained: Optional[str] = typer.Option(None, help="open_clip tag, local checkpoint path, or 'none'"),
    sampling: str = typer.Option("fps:1", help="fps:R | uniform:N | keyframes"),
    address: Optional[str] = typer.Option(None, help="Ray address: 'auto' or ray://host:10001 (default: local Ray)"),
    prune: bool = typer.Option(False, help="remove rows of files no longer in SOURCE"),
    retry_failed: bool = typer.Option(False, help="re-attempt videos recorded as failed"),
    max_failures: Optional[int] = typer.Option(None, help="stop once more than this many videos failed"),
    chunk_frames: int = typer.Option(32, help="most frames per decoded batch (bounds memory)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as one JSON object"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Index SOURCE into STORE (resumable: finished videos are skipped, changed files replaced)."""
    _quiet_logs(verbose)
    from operators.models import ModelLoadError
    from pipeline.index_job import IndexConfig, run_index
    from pipeline.sources import SourceError
    from retrieval.store import StoreError

    cfg = IndexConfig(source=source, store=store, model=model, pretrained=pretrained, sampling=sampling,
                      address=address, prune=prune, retry_failed=retry_failed, max_failures=max_failures,
                      chunk_frames=chunk_frames, device=device, progress=not as_json and sys.stderr.isatty())
    try:
        summary = run_index(cfg)
    except (SourceError, StoreError, ModelLoadError, ValueError) as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(summary.as_dict()))
    else:
        typer.echo(summary.render())
    if summary.stopped_early:
        raise typer.Exit(1)


@app.command()
def search(
    query: str = typer.Argument(..., help="text query"),
    store: str = typer.Option("./vidseek.db", help=STORE_HELP),
    k: int = typer.Option(10, help="hits to return"),
    aggregation: str = typer.Option("query-weighted", help="mean | max | query-weighted | learned"),
    tau: float = typer.Option(0.1, help="query-weighted pooling temperature"),
    rerank: bool = typer.Option(True, "--rerank/--no-rerank", help="CLIPRerank fusion with max-pooled frame scores"),
    alpha: float = typer.Option(0.4, help="CLIPRerank weight of the first-stage score"),
    depth: int = typer.Option(100, help="candidates per stage and rerank depth"),
    filter: list[str] = typer.Option([], "--filter", help="metadata filter key=value (repeatable; typed, quoted)"),
    as_json: bool = typer.Option(False, "--json"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Search STORE with a text query: one hit per video with its best moment."""
    _quiet_logs(verbose)
    from retrieval.filters import all_of, parse_user_filter
    from retrieval.search import Searcher, SearchParams
    from retrieval.store import StoreError

    try:
        expr = all_of(*[parse_user_filter(f) for f in filter])
        params = SearchParams(k=k, aggregation=aggregation, tau=tau, rerank=rerank, alpha=alpha, depth=depth,
                              filter=expr).validate()
        hits = Searcher(store).search(query, params)
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
        lines.append(f"  {i:2d}. {h.score:7.4f}  {Path(h.path).name}  moment {h.moment[0]:.1f}–{h.moment[1]:.1f} s "
                     f"(best {h.best_t:.1f} s)")
    return "\n".join(lines)


@app.command()
def models() -> None:
    """List model names: vidseek's registry first, then open_clip's architectures."""
    from operators.models import get_model_entry, list_models

    for name in list_models():
        e = get_model_entry(name)
        typer.echo(f"{name:32s} {e.description or 'open_clip architecture'}")


@app.command()
def info(store: str = typer.Option("./vidseek.db", help=STORE_HELP), as_json: bool = typer.Option(False, "--json")):
    """What a store holds: model stamp, videos by status, frames."""
    _quiet_logs(False)
    from retrieval.store import StoreError, VideoStore

    try:
        with VideoStore(store) as s:
            recs = s.video_records(fields=["video_id", "status"])
            out = {"store": store, "model": s.model_stamp(), "videos": len(recs),
                   "ok": sum(r["status"] == "ok" for r in recs), "failed": sum(r["status"] == "failed" for r in recs),
                   "frames": s.count_frames() if s.dim else 0}
    except StoreError as e:
        _fail(str(e))
    typer.echo(json.dumps(out) if as_json else "\n".join(f"{k}: {v}" for k, v in out.items()))


@app.command()
def demo(
    store: str = typer.Option("./vidseek-demo.db", help=STORE_HELP),
    model: str = typer.Option("tiny-random", help="registry name"),
    query: list[str] = typer.Option(["a rabbit in a forest", "people riding bicycles"], help="queries to run"),
) -> None:
    """Index the bundled sample videos on local Ray + Milvus Lite, then search them."""
    _quiet_logs(False)
    from pipeline.index_job import IndexConfig, run_index
    from pipeline.samples import sample_video_dir
    from retrieval.search import Searcher

    src = sample_video_dir()
    typer.echo(f"indexing {src} into {store} with model {model} …")
    summary = run_index(IndexConfig(source=str(src), store=store, model=model, progress=sys.stderr.isatty()))
    typer.echo(summary.render())
    searcher = Searcher(store)
    for q in query:
        typer.echo(format_hits(q, searcher.search(q, k=5)))
    searcher.store.close()


def main() -> None:
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    app()


if __name__ == "__main__":
    main()
