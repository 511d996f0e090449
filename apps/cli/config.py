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


def _read(path: Path, param: Any) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except OSError as e:
        raise typer.BadParameter(f"cannot read {path}: {e.strerror}", param=param) from e
    except tomllib.TOMLDecodeError as e:
        raise typer.BadParameter(f"{path} is not valid TOML: {e}", param=param) from e


def _command_values(data: dict, path: Path, command: str, param: Any) -> tuple[dict, str]:
    """This command's keys (its table in a shared file, else the top level) and where they are, for messages."""
    tables = {k for k, v in data.items() if k in COMMANDS and isinstance(v, dict)}
    if not tables:
        return data, str(path)
    loose = sorted(set(data) - tables)  # a shared file: every key belongs to a command's table
    if loose:
        raise typer.BadParameter(
            f"{path}: {', '.join(loose)} outside a table; put each key under [index], [search] or [serve]",
            param=param,
        )
    if command not in tables:
        raise typer.BadParameter(f"{path} has no [{command}] table (it has {', '.join(sorted(tables))})", param=param)
    return data[command], f"{path} [{command}]"


def _key_names(command: Any) -> dict[str, str]:
    """Every spelling of a key (the parameter's name or its long flag, dashes as underscores) -> the parameter."""
    names = {}
    for p in command.params:
        if p.name in ("config", "help"):
            continue
        names[p.name] = p.name
        for opt in getattr(p, "opts", []):
            if opt.startswith("--"):
                names[opt[2:].replace("-", "_")] = p.name  # e.g. json for --json (parameter as_json)
    return names


def _load(ctx: typer.Context, param: Any, path: str | Path | None) -> None:
    if not path:
        return None
    path = Path(path)
    command = ctx.info_name
    values, where = _command_values(_read(path, param), path, command, param)
    names = _key_names(ctx.command)
    hints = typing.get_type_hints(ctx.command.callback)  # a derived command's are its dataclass's (options.py)
    defaults = {}
    for key, value in values.items():
        name = names.get(key.replace("-", "_"))
        if name is None:
            known = ", ".join(sorted(n.replace("_", "-") for n in names if n != "as_json"))
            raise typer.BadParameter(
                f"{where}: unknown key {key!r} for `vidseek {command}` (known: {known})", param=param
            )
        accepted, what = _expected(hints.get(name, str))
        if not isinstance(value, accepted) or (bool not in accepted and isinstance(value, bool)):
            raise typer.BadParameter(f"{where}: {key} = {value!r} must be {what}", param=param)
        defaults[name] = value
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return None
