"""``vidseek train`` and ``vidseek import-clip4clip``: the learned temporal head's commands (main.py registers them)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from vidseek.apps.cli.common import fail, quiet_logs
from vidseek.apps.cli.options import INDEX, derived


@derived
def train(
    dataset: Path = typer.Option(..., exists=True, dir_okay=False, help="captions: MSR-VTT JSON, CSV or JSONL"),
    out: Path = typer.Option(..., dir_okay=False, help="head checkpoint to write (OUT.partial: per-epoch state)"),
    store=INDEX.field("store", help=INDEX.help("store") + " holding the dataset's frame vectors"),
    head_type: str = typer.Option("seqTransf", help="seqTransf | seqLSTM"),
    frames: int = typer.Option(12, help="frames sampled uniformly per video (CLIP4Clip: 12)"),
    epochs: int = typer.Option(5),
    batch_size: int = typer.Option(128),
    lr: float = typer.Option(1e-4),
    weight_decay: float = typer.Option(0.2, help="on weight matrices (not biases, LayerNorm, embeddings)"),
    warmup: float = typer.Option(0.1, help="share of steps with linear warm-up (then cosine decay)"),
    hard_negatives: bool = typer.Option(
        False,
        "--hard-negatives/--random-batches",
        help="batch each video with its nearest-caption neighbour (e.g. 'X then Y' "
        "beside 'Y then X'); default: random batches as in CLIP4Clip",
    ),
    val_fraction: float = typer.Option(0.1, help="share of videos held out for validation (0: none)"),
    seed: int = typer.Option(0),
    split: Optional[str] = typer.Option(None, help="MSR-VTT JSON split to train on (train/validate/test)"),
    video_root: Optional[Path] = typer.Option(
        None, file_okay=False, help="decode and encode dataset videos the store lacks from here"
    ),
    sampling=INDEX.field("sampling", help="frame sampling for videos decoded on the fly"),
    model: Optional[str] = typer.Option(
        None,
        help="without a store: encoder to use (default tiny-random: random weights, finds nothing; for a real "
        "encoder e.g. --model ViT-B-32 --pretrained /path/to/open_clip_model.safetensors); with one: must be the "
        "store's",
    ),
    pretrained: Optional[str] = typer.Option(
        None, help="weights for --model: open_clip tag, local checkpoint path, or 'none' (random)"
    ),
    device=INDEX.field("device"),
    threads: Optional[int] = typer.Option(None, help="CPU threads for training"),
    resume: bool = typer.Option(False, "--resume", help="continue from OUT.partial (same options)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON object"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Train a CLIP4Clip temporal head (CLIP frozen) on the frame vectors in STORE → OUT."""
    quiet_logs(verbose)
    from dataclasses import asdict

    from vidseek.operators.models import ModelLoadError
    from vidseek.pipeline.train_head import TrainConfig, train_head
    from vidseek.store.video_store import StoreError, is_server_uri

    use_store = store
    if not is_server_uri(store) and not Path(store).exists():
        if video_root is None:
            fail(
                f"store {store} does not exist: index the dataset's videos first (`vidseek index`), or pass "
                "--video-root to decode and encode them for training"
            )
        use_store = None  # no store: train from videos decoded on the fly (nothing is written to a store)
    cfg = TrainConfig(
        dataset=str(dataset),
        out=str(out),
        store=use_store,
        head_type=head_type,
        frames=frames,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        warmup=warmup,
        val_fraction=val_fraction,
        seed=seed,
        split=split,
        hard_negatives=hard_negatives,
        video_root=str(video_root) if video_root else None,
        sampling=sampling,
        model=model,
        pretrained=pretrained,
        device=device,
        threads=threads,
        resume=resume,
        progress=not as_json and sys.stderr.isatty(),
    )
    try:
        result = train_head(cfg, echo=lambda line: typer.echo(line, err=as_json))
    except (ValueError, StoreError, ModelLoadError, FileNotFoundError) as e:
        fail(str(e))
    typer.echo(json.dumps(asdict(result)) if as_json else result.render(epochs=False))


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
