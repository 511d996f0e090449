"""Milvus filter expressions built from typed values with strict quoting — never from raw user text.

Milvus Lite 3.2 does not support ``filter_params`` templating, so values are rendered here: strings are
JSON-escaped inside double quotes (control characters rejected), numbers must be finite numbers, field
names must be plain identifiers from an allow-list the caller passes.
"""

from __future__ import annotations

import json
import math
import re
from typing import Iterable

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_OPS = {"==", "!=", ">", ">=", "<", "<="}


def quote(value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string filter value, got {type(value).__name__}")
    if any(ord(ch) < 0x20 for ch in value):
        raise ValueError("filter values may not contain control characters")
    return json.dumps(value, ensure_ascii=False)


def literal(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("filter numbers must be finite")
        return repr(value)
    return quote(value)


def field_ref(name: str, json_field: str | None = None) -> str:
    """A scalar field, or a key inside a JSON field (``metadata["lang"]``)."""
    if json_field is None:
        if not _IDENT.match(name):
            raise ValueError(f"bad field name {name!r}")
        return name
    if not _IDENT.match(json_field):
        raise ValueError(f"bad field name {json_field!r}")
    return f"{json_field}[{quote(name)}]"


def compare(field: str, op: str, value: str | int | float | bool) -> str:
    if op not in _OPS:
        raise ValueError(f"bad comparison {op!r}; use one of {sorted(_OPS)}")
    return f"{field} {op} {literal(value)}"


def in_list(field: str, values: Iterable[str | int]) -> str:
    vals = list(values)
    if not vals:  # matches nothing; a bare `false` is refused by Milvus 2.3 ("predicate is not a boolean expression")
        return f"{field} in []"
    return f"{field} in [{', '.join(literal(v) for v in vals)}]"


def all_of(*parts: str | None) -> str:
    parts = [p for p in parts if p]
    return " and ".join(f"({p})" for p in parts)


def parse_user_filter(spec: str, json_field: str = "metadata") -> str:
    """``key=value`` / ``key>=3`` from a user (CLI/HTTP) -> a safe filter on the metadata JSON field.

    The key must be an identifier; the value is typed (int, float, true/false, else string) and quoted.
    """
    m = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*(==|!=|>=|<=|=|>|<)\s*(.*?)\s*$", spec)
    if not m:
        raise ValueError(f"bad filter {spec!r}: use key=value, key!=value, key>=number …")
    key, op, raw = m.groups()
    op = "==" if op == "=" else op
    value: str | int | float | bool
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                value = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"" else raw
    return compare(field_ref(key, json_field), op, value)
