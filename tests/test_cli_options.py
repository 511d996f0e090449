"""The CLI's config options come from their dataclasses (apps/cli/options.py): every field is in its table,
each option's default and type are the field's, and no command module of the CLI imports another."""

from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path

import pytest
import typer.main

from vidseek.apps.cli.main import app
from vidseek.apps.cli.options import CLIP, COPIES, INDEX, SEARCH, TRAIN, CliOption, NotOnCli, OptionTable
from vidseek.pipeline.index_config import IndexConfig
from vidseek.pipeline.train_config import TrainConfig
from vidseek.retrieval.copies import CopyParams
from vidseek.retrieval.params import ClipSearchParams, SearchParams

ROOT = Path(__file__).resolve().parents[1]
TABLES = {
    "index": INDEX,
    "search": SEARCH,
    "search --video": CLIP,
    "copies": COPIES,
    "train": TRAIN,
}  # command: its table


def command(name: str):
    return typer.main.get_command(app).commands[name.split()[0]]  # "search --video": the search command


@pytest.mark.parametrize(
    "cls, table",
    [
        (IndexConfig, INDEX),
        (SearchParams, SEARCH),
        (ClipSearchParams, CLIP),
        (CopyParams, COPIES),
        (TrainConfig, TRAIN),
    ],
    ids=["index", "search", "clip", "copies", "train"],
)
def test_every_field_is_a_cli_option_or_says_why_not(cls, table):
    assert table.missing == [], (
        f"{cls.__name__} fields {table.missing} have no entry in apps/cli/options.py: add a CliOption (name, help) "
        "or NotOnCli(reason)"
    )


def test_a_new_field_without_an_entry_is_reported_and_an_unknown_entry_refused():
    grown = dataclasses.make_dataclass("Grown", [("fresh", int, dataclasses.field(default=3))], bases=(SearchParams,))
    assert OptionTable(grown, SEARCH.entries).missing == ["fresh"]
    with pytest.raises(TypeError, match="no field gone"):
        OptionTable(SearchParams, {**SEARCH.entries, "gone": NotOnCli("renamed")})


@pytest.mark.parametrize("name", TABLES)
def test_options_take_default_and_type_from_the_dataclass(name):
    table = TABLES[name]
    cmd = command(name)
    params = {p.name: p for p in cmd.params}
    hints = typing.get_type_hints(cmd.callback)
    want_hints = typing.get_type_hints(table.cls)
    for field, entry in table.options().items():
        param = table.cli_name(field).replace("-", "_")
        assert param in params, f"{field}: no --{table.cli_name(field)} on `vidseek {name}`"
        default = table.default(field)
        assert params[param].required if default is ... else params[param].default == default, field
        assert hints[param] == want_hints[field], field
        assert params[param].help == entry.help, field
        if not entry.argument:
            assert f"--{table.cli_name(field)}" in params[param].opts


def test_other_commands_take_the_same_defaults():
    for name in ("search", "serve", "info", "thin", "eval", "train"):
        assert {p.name: p.default for p in command(name).params}["store"] == IndexConfig.store, name
    train = {p.name: p.default for p in command("train").params}
    assert (train["sampling"], train["device"]) == (IndexConfig.sampling, IndexConfig.device)
    rerank = {p.name: p.default for p in command("rerank").params}
    assert (rerank["alpha"], rerank["depth"], rerank["model"]) == (
        SearchParams.alpha,
        SearchParams.depth,
        IndexConfig.model,
    )


def test_a_flag_keeps_its_own_off_switch():
    hard = {p.name: p for p in command("train").params}["hard_negatives"]
    assert (hard.opts, hard.secondary_opts, hard.default) == (["--hard-negatives"], ["--random-batches"], False)
    resume = {p.name: p for p in command("train").params}["resume"]
    assert (resume.opts, resume.secondary_opts) == (["--resume"], [])  # an on switch only, as before


def test_precision_choices_are_the_encoders():
    from vidseek.apps.cli.options import PRECISIONS
    from vidseek.operators.device import PRECISIONS as encoder

    assert set(PRECISIONS) == {"auto", *encoder}


def test_not_on_cli_entries_name_no_option():
    for table in TABLES.values():
        for field, entry in table.entries.items():
            assert isinstance(entry, (CliOption, NotOnCli)), field
            if isinstance(entry, NotOnCli):
                assert entry.reason, field


def test_no_cli_module_imports_another_command_module():
    """main.py registers the other modules' commands; they import only the shared modules (no circle)."""
    shared = {
        "vidseek.apps.cli.common",
        "vidseek.apps.cli.options",
        "vidseek.apps.cli.config",
        "vidseek.apps.cli.samples",
    }
    for path in sorted((ROOT / "apps" / "cli").glob("*.py")):
        if path.name == "main.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vidseek.apps.cli"):
                names = (
                    [node.module]
                    if node.module != "vidseek.apps.cli"
                    else [f"{node.module}.{a.name}" for a in node.names]
                )
                assert set(names) <= shared, f"{path.name} imports {names}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("vidseek.apps.cli.") and a.name not in shared for a in node.names)
