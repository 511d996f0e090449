"""``vidseek train`` and ``vidseek import-clip4clip``: the learned temporal head's commands (main.py registers them)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from vidseek.apps.cli.common import fail, quiet_logs
from vidseek.apps.cli.options import INDEX, TRAIN, derived
from vidseek.pipeline.train_config import TrainConfig


@derived
def train(
    dataset: Path = typer.Option(..., exists=True, dir_okay=False, help="captions: MSR-VTT JSON, CSV or JSONL"),
    out: Path = typer.Option(..., dir_okay=False, help="head checkpoint to write (OUT.partial: per-epoch state)"),
    store=INDEX.field("store", help=INDEX.help("store") + " holding the dataset's frame vectors"),
    video_root: Optional[Path] = typer.Option(
        None, file_okay=False, help="decode and encode dataset videos the store lacks from here"
    ),
    params=TRAIN.fields(),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON object"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Train a CLIP4Clip temporal head (CLIP frozen) on the frame vectors in STORE → OUT."""
    quiet_logs(verbose)
    from dataclasses import asdict

    from vidseek.operators.models import ModelLoadError
    from vidseek.pipeline.train_head import train_head
    from vidseek.store.video_store import StoreError

    cfg = TrainConfig(
        dataset=str(dataset),
        out=str(out),
        store=_training_store(store, video_root),
        video_root=str(video_root) if video_root else None,
        progress=not as_json and sys.stderr.isatty(),
        **params,
    )
    try:
        result = train_head(cfg, echo=lambda line: typer.echo(line, err=as_json))
    except (ValueError, StoreError, ModelLoadError, FileNotFoundError) as e:
        fail(str(e))
    typer.echo(json.dumps(asdict(result)) if as_json else result.render(epochs=False))


def _training_store(store: str, video_root: Path | None) -> str | None:
    """The store to read frame vectors from; None when it does not exist and ``video_root`` feeds training."""
    from vidseek.store.video_store import is_server_uri

    if is_server_uri(store) or Path(store).exists():
        return store
    if video_root is None:
        fail(
            f"store {store} does not exist: index the dataset's videos first (`vidseek index`), or pass "
            "--video-root to decode and encode them for training"
        )
    return None  # no store: train from videos decoded on the fly (nothing is written to a store)


def import_clip4clip_cmd(
    checkpoint: Path = typer.Argument(..., exists=True, dir_okay=False, help="official CLIP4Clip pytorch_model.bin"),
    out: Path = typer.Option(..., file_okay=False, help="directory for encoder.safetensors, head.pt, import.json"),
    model: Optional[str] = typer.Option(
        None, help="open_clip architecture of the weights (default: inferred, e.g. ViT-B-32-quickgelu)"
    ),
    frames: int = typer.Option(12, help="frames the head samples per video (CLIP4Clip: 12)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Map an official CLIP4Clip checkpoint onto vidseek's open_clip encoder and seqTransf/seqLSTM head."""
    quiet_logs(False)
    from dataclasses import asdict

    from vidseek.operators.clip4clip_import import import_clip4clip
    from vidseek.operators.models import ModelLoadError

    try:
        report = import_clip4clip(checkpoint, out, model_name=model, n_frames=frames)
    except (ValueError, ModelLoadError, OSError) as e:
        fail(str(e))
    typer.echo(json.dumps(asdict(report)) if as_json else report.render())
