"""What every command module of the CLI shares: failing and warning on stderr, quiet logs, a searcher.

Light (no torch, no Ray, no store at import): main.py, train.py and testbed.py import it, and main.py
registers their commands; no command module imports another.
"""

from __future__ import annotations

import logging
from typing import NoReturn

import typer


def fail(msg: str, code: int = 2) -> NoReturn:
    """``error: …`` on stderr, then exit with ``code``."""
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(code)


def warn(message: str | None) -> None:
    """One ``warning: …`` line on stderr (stdout stays the command's output, JSON with --json)."""
    if message:
        typer.secho(f"warning: {message}", fg="yellow", err=True)


def open_searcher(store: str):
    """A Searcher over STORE; a store whose model has random weights gets one warning line on stderr."""
    from vidseek.retrieval.search import Searcher

    searcher = Searcher(store, warn=False)
    warn(searcher.model_warning)
    return searcher


def quiet_logs(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("milvus_lite", "faiss", "ray"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)
    # pymilvus logs every failed RPC at ERROR while the store retries; the store's own error says what failed
    logging.getLogger("pymilvus").setLevel(logging.INFO if verbose else logging.CRITICAL)
