"""Functions longer than a limit (default 80 lines, decorators and docstring included), longest first.

    python tests/function_lengths.py [--max 80] [folder ...]   (default folders: the five layers)

Prints ``lines  path:line  name`` for each and exits 1 when any is found; tests/test_layout.py holds the
layers to the list of today's offenders (``LONG_FUNCTIONS``), which only shrinks.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("operators", "store", "retrieval", "pipeline", "apps")


def long_functions(folders: list[Path], limit: int) -> list[tuple[int, str, str]]:
    """(lines, "path:line", qualified name) of every function over ``limit`` lines under ``folders``."""
    out = []
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            out += _in(tree, path.relative_to(ROOT).as_posix(), "", limit)
    return sorted(out, reverse=True)


def _in(node: ast.AST, where: str, prefix: str, limit: int) -> list[tuple[int, str, str]]:
    found = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{child.name}"
            start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
            lines = child.end_lineno - start + 1
            if not isinstance(child, ast.ClassDef) and lines > limit:
                found.append((lines, f"{where}:{start}", name))
            found += _in(child, where, f"{name}.", limit)
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max", type=int, default=80)
    ap.add_argument("folders", nargs="*", default=list(LAYERS))
    args = ap.parse_args()
    found = long_functions([ROOT / f for f in args.folders], args.max)
    for lines, where, name in found:
        print(f"{lines:5d}  {where}  {name}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
