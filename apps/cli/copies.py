"""``vidseek copies``: pairs of stored videos that share a segment, with the aligned time ranges (docs/copies.md).

In this process (``retrieval/copies.py`` ``find_copies``), or on Ray for a server store
(``pipeline/copies_job.py``): with ``--ray``, or by itself for a server store of ``RAY_MIN_VIDEOS`` videos or
more (``--local`` keeps it here). Both give the same records.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from vidseek.apps.cli.common import fail, quiet_logs
from vidseek.apps.cli.options import COPIES, INDEX, derived, one_of

FORMATS = ("text", "json", "jsonl", "csv")


@derived
def copies(
    store=INDEX.field("store"),
    params=COPIES.fields(),
    fmt: str = typer.Option(
        "text",
        "--format",
        help="text (one line per pair), json, jsonl or csv (the columns of docs/copies.md's CopyRecord)",
        callback=one_of(*FORMATS),
    ),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        dir_okay=False,
        help="write the records here and print a count by kind (as --format; with text: by the suffix, .csv, "
        ".jsonl, else JSON)",
    ),
    ray: Optional[bool] = typer.Option(
        None,
        "--ray/--local",
        show_default=False,
        help="probe and align in Ray tasks (a Milvus server store only), or in this process; default: Ray for "
        "a server store of 2000+ videos",
    ),
    address=INDEX.field("address", help="--ray: Ray address, 'auto' or ray://host:10001 (default: local Ray)"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Pairs of videos in STORE that share a segment (copies, excerpts), from the stored frame vectors only."""
    quiet_logs(verbose)
    from tqdm import tqdm

    from vidseek.pipeline.copies_job import find_copies_on_ray, runs_on_ray
    from vidseek.pipeline.job_ray import JobError
    from vidseek.retrieval.copies import CopyParams, find_copies, format_copies, write_copies
    from vidseek.store.video_store import StoreError, VideoStore

    bars: dict[str, tqdm] = {}

    def progress(step: str, done: int, total: int) -> None:
        bar = bars.get(step) or bars.setdefault(step, tqdm(total=total, desc=step, disable=not sys.stderr.isatty()))
        bar.update(done - bar.n)

    try:
        checked = CopyParams(**params).validate()
        with VideoStore(store) as s:
            s.require_ready()
            n_ok = s.count(filter='status == "ok"')
            on_ray = runs_on_ray(store, ray, n_ok)
            records = None if on_ray else find_copies(s, params=checked, progress=progress)
        if on_ray:  # after the driver's own connection is closed
            records = find_copies_on_ray(store, checked, address=address, progress=progress)
    except (StoreError, JobError, ValueError) as e:
        fail(str(e))
    finally:
        for bar in bars.values():
            bar.close()
    if out is not None:
        write_copies(records, out, None if fmt == "text" else fmt)
        kinds = {k: sum(r.kind == k for r in records) for k in ("duplicate", "excerpt", "segment")}
        summary = ", ".join(f"{n} {k}" for k, n in kinds.items())
        typer.echo(f"{len(records)} pairs among {n_ok} videos ({summary}) → {out}")
    elif fmt == "text":
        typer.echo(format_text(records, n_ok))
    else:
        typer.echo(format_copies(records, fmt), nl=False)


def format_text(records: list, n_videos: int) -> str:
    lines = [f"{len(records)} pairs among {n_videos} videos"]
    for r in records:
        lines.append(
            f"  {r.score:.3f} {r.kind:9s} {Path(r.a_path).name} {r.a_start:.1f}–{r.a_end:.1f} s ↔ "
            f"{Path(r.b_path).name} {r.b_start:.1f}–{r.b_end:.1f} s ({r.frames} frames)"
        )
    return "\n".join(lines)
