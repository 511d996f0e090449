"""``--config FILE.toml`` for ``vidseek index | search | serve``: a job kept in a file, keys = the options.

    # vidseek.toml — top-level keys for one command, or one table per command in a shared file
    [index]
    source = "/data/videos"
    store = "http://milvus:19530"
    sampling = "uniform:16"
    decode-timeout = 120

Keys are the command's option names (``decode-timeout`` or ``decode_timeout``). Options given on the command
line win over the file. An unknown key or a value of the wrong type is refused before anything runs, with
the file, the key and what is expected. Values become Click's defaults (``default_map``): after the type check
here, each is converted and range-checked as the same option on the command line would be.
"""

from __future__ import annotations

import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import typer

COMMANDS = ("index", "search", "serve")


def config_option() -> Any:
    return typer.Option(
        None,
        "--config",
        is_eager=True,
        callback=_load,
        dir_okay=False,
        show_default=False,
        help="TOML file whose keys are this command's options (the command line wins)",
    )


def _expected(hint: Any) -> tuple[tuple[type, ...], str]:
    """The TOML types an option of this annotation accepts (Optional[X] as X; Path as a string)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if origin is list or hint is list:
        return (list,), "a list"
    if hint is bool:
        return (bool,), "true or false"
    if hint is int:
        return (int,), "an integer"
    if hint is float:
        return (int, float), "a number"
    return (str,), "a string"


def _load(ctx: typer.Context, param: Any, path: str | Path | None) -> None:
    if not path:
        return None
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise typer.BadParameter(f"cannot read {path}: {e.strerror}", param=param) from e
    except tomllib.TOMLDecodeError as e:
        raise typer.BadParameter(f"{path} is not valid TOML: {e}", param=param) from e
    command = ctx.info_name
    tables = {k for k, v in data.items() if k in COMMANDS and isinstance(v, dict)}
    if tables:  # a shared file: every key belongs to a command's table
        loose = sorted(set(data) - tables)
        if loose:
            raise typer.BadParameter(
                f"{path}: {', '.join(loose)} outside a table; put each key under [index], [search] or [serve]",
                param=param,
            )
        if command not in tables:
            raise typer.BadParameter(
                f"{path} has no [{command}] table (it has {', '.join(sorted(tables))})", param=param
            )
    values = data.get(command, {}) if tables else data
    where = f"{path} [{command}]" if tables else str(path)
    hints = typing.get_type_hints(ctx.command.callback)
    params, names = {}, {}  # parameter -> annotation; key spelling (parameter or long flag) -> parameter
    for p in ctx.command.params:
        if p.name in ("config", "help"):
            continue
        params[p.name] = hints.get(p.name, str)
        names[p.name] = p.name
        for opt in getattr(p, "opts", []):
            if opt.startswith("--"):
                names[opt[2:].replace("-", "_")] = p.name  # e.g. json for --json (parameter as_json)
    defaults = {}
    for key, value in values.items():
        name = names.get(key.replace("-", "_"))
        if name is None:
            known = ", ".join(sorted(n.replace("_", "-") for n in names if n != "as_json"))
            raise typer.BadParameter(
                f"{where}: unknown key {key!r} for `vidseek {command}` (known: {known})", param=param
            )
        accepted, what = _expected(params[name])
        if not isinstance(value, accepted) or (bool not in accepted and isinstance(value, bool)):
            raise typer.BadParameter(f"{where}: {key} = {value!r} must be {what}", param=param)
        defaults[name] = value
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return None
