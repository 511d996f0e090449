"""``vidseek testbed``: the offline quality testbed (synthetic world, trained tiny CLIP, quality table)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from vidseek.apps.cli.common import quiet_logs
from vidseek.operators.models import TESTBED_HEAD

testbed_app = typer.Typer(no_args_is_help=True, help="Offline quality testbed: world, quality table.")


@testbed_app.command("world")
def world_cmd(
    out: Path = typer.Option(Path("/tmp/vidseek-testbed/eval"), help="where to write the videos"),
    seed: int = typer.Option(7, help="7 is the eval world the README's table uses"),
) -> None:
    """Generate the eval world: videos, queries.jsonl (content / brief / order families), captions.csv."""
    from vidseek.apps.testbed.world import generate_world

    m = generate_world(out, seed)
    typer.echo(f"{len(m['clips'])} clips, {len(m['queries'])} queries → {out}")


@testbed_app.command("eval")
def eval_cmd(
    world: Path = typer.Option(Path("/tmp/vidseek-testbed/eval"), help="eval world (generated if missing)"),
    store: str = typer.Option("/tmp/vidseek-testbed/eval.db", help="store for the world's vectors"),
    seed: int = typer.Option(7),
    head: Optional[Path] = typer.Option(
        TESTBED_HEAD, help="temporal head for the learned row (default: the committed testbed head)"
    ),
    no_head: bool = typer.Option(False, "--no-head", help="leave the learned row out"),
    out: Optional[Path] = typer.Option(None, help="also write table.md and result.json here"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Index the world with the testbed model through the real job, then the quality table per family."""
    quiet_logs(False)
    from vidseek.apps.testbed.store_eval import format_table, store_quality
    from vidseek.apps.testbed.world import generate_world

    if not (world / "queries.jsonl").exists():
        generate_world(world, seed)
    result = store_quality(world, store, head=None if no_head or head is None else str(head))
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.md").write_text(format_table(result) + "\n")
        (out / "result.json").write_text(json.dumps(result, indent=1))
    typer.echo(json.dumps(result) if as_json else format_table(result))


@testbed_app.command("thinning")
def thinning_cmd(
    world: Path = typer.Option(Path("/tmp/vidseek-testbed/eval"), help="eval world (generated if missing)"),
    store: str = typer.Option("/tmp/vidseek-testbed/eval.db", help="the world's unthinned store (made if missing)"),
    seed: int = typer.Option(7),
    thresholds: list[float] = typer.Option([0.99, 0.98, 0.95, 0.9], help="merge thresholds (cosine)"),
    footage: bool = typer.Option(True, help="also count rows kept on the bundled real sample videos"),
    out: Optional[Path] = typer.Option(None, help="also write thinning.md and thinning.json here"),
) -> None:
    """Rows kept against R@1 and moment accuracy per merge threshold (copies of the store, thinned)."""
    quiet_logs(False)
    from vidseek.apps.cli.samples import sample_videos
    from vidseek.apps.testbed.thinning_eval import format_thinning, thinning_table
    from vidseek.apps.testbed.world import generate_world

    if not (world / "queries.jsonl").exists():
        generate_world(world, seed)
    result = thinning_table(world, store, list(thresholds), footage=sample_videos() if footage else None)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "thinning.md").write_text(format_thinning(result) + "\n")
        (out / "thinning.json").write_text(json.dumps(result, indent=1))
    typer.echo(format_thinning(result))
