"""One source of defaults: the CLI's options, the service's search parameters and the README's table all
read pipeline/index_config.py (indexing) and retrieval/params.py (search)."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from vidseek.apps.cli.main import app
from vidseek.pipeline.index_config import IndexConfig
from vidseek.retrieval.params import DEFAULTS

ROOT = Path(__file__).resolve().parents[1]
INDEX = {
    "store": "store",
    "model": "model",
    "sampling": "sampling",
    "chunk_frames": "chunk_frames",
    "decoder": "decoder",
    "skip_loop_filter": "skip_loop_filter",
    "decode_timeout": "decode_timeout_s",
    "decode_timeout_per_s": "decode_timeout_per_s",
    "device": "device",
    "store_retry": "store_retry_s",
}
SEARCH = ("k", "aggregation", "tau", "rerank", "alpha", "depth")


def cli_defaults(command: str) -> dict:
    cmd = typer.main.get_command(app).commands[command]
    return {p.name: p.default for p in cmd.params}


def expected() -> dict[str, object]:
    out = {opt: getattr(IndexConfig, field) for opt, field in INDEX.items()}
    out.update({name: getattr(DEFAULTS, name) for name in SEARCH})
    return out


def test_cli_options_default_to_the_code_defaults():
    index, search = cli_defaults("index"), cli_defaults("search")
    assert {o: index[o] for o in INDEX} == {o: getattr(IndexConfig, f) for o, f in INDEX.items()}
    assert {n: search[n] for n in SEARCH} == {n: getattr(DEFAULTS, n) for n in SEARCH}
    assert search["store"] == IndexConfig.store


def test_readme_table_matches_the_code_defaults():
    text = (ROOT / "README.md").read_text().split("### Defaults", 1)[1].split("## ", 1)[0]
    table = {}
    for row in re.findall(r"^\|(.+)\|$", text, re.M):
        cells = [c.strip().strip("`") for c in row.split("|")]
        for opt, value in (cells[0:2], cells[3:5]):
            if re.fullmatch(r"--[a-z][a-z-]*", opt):
                table[opt[2:].replace("-", "_")] = value
    want = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in expected().items()}
    assert table == want


def test_service_search_parameters_default_to_the_code_defaults(tmp_path):
    from fastapi.testclient import TestClient

    from vidseek.apps.service import create_app

    with TestClient(create_app(str(tmp_path / "empty.db"))) as client:
        schema = client.get("/openapi.json").json()
    params = {p["name"]: p["schema"].get("default") for p in schema["paths"]["/search"]["get"]["parameters"]}
    assert {n: params[n] for n in SEARCH} == {n: getattr(DEFAULTS, n) for n in SEARCH}
