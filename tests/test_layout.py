"""Architecture rules that keep the code base navigable (docs/architecture.md): each layer imports only itself
and the layers below, and operators are Ray-free.

Both rules read the source, not a running interpreter: ``scan_imports`` resolves every import a file makes —
``import a.b``, ``from a import b`` (``a`` and ``a.b``), relative imports, function-level ones, and
``importlib.import_module`` / ``__import__`` of string literals — to absolute module names. A dynamic import
of a computed name cannot be checked, so inside a layer folder it fails the rule unless its line says why it
keeps to it: ``# layer-ok: <reason>``.
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from collections import deque
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# -- layers (docs/architecture.md): a module imports only its own layer and the ones below -----------------
# One folder per layer, bottom to top; each is the package vidseek.<folder> (pyproject.toml maps them).
LAYERS = ["operators", "store", "retrieval", "pipeline", "apps"]
FOLDERS = LAYERS
OLD_TOP_LEVEL = ("operators", "store", "retrieval", "pipeline", "apps")  # importable bare only from a checkout
LAYER_OK = re.compile(r"#\s*layer-ok:\s*(\S.*)")


# -- the import scanner ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Import:
    line: int
    name: str | None  # absolute module name; None: one the scanner cannot resolve (a computed name, say)
    form: str  # the source of the statement or call, for messages
    ok: str = ""  # the reason of a `# layer-ok: <reason>` comment on its line(s)


def _resolve(name: str, level: int, package: str | None) -> str | None:
    """importlib's resolution of ``name`` with ``level`` leading dots against ``package``; None where that
    fails (no package known, or more dots than the package has parts)."""
    if level == 0:
        return name or None
    if not package:
        return None
    bits = package.rsplit(".", level - 1)
    if len(bits) < level:
        return None
    return f"{bits[0]}.{name}" if name else bits[0]


def _literal_str(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _dynamic_targets(call: ast.Call, kind: str, module: str | None, package: str | None) -> list[str | None]:
    """The modules an ``import_module(...)`` or ``__import__(...)`` call loads; None for each it cannot tell."""
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return [None]
    params = ["name", "package"] if kind == "import_module" else ["name", "globals", "locals", "fromlist", "level"]
    args = dict(zip(params, call.args)) | {k.arg: k.value for k in call.keywords}
    name = _literal_str(args.get("name"))
    if name is None:
        return [None]
    if kind == "import_module":
        level = len(name) - len(name.lstrip("."))
        pkg = args.get("package")
        if isinstance(pkg, ast.Name) and pkg.id in ("__package__", "__name__"):
            pkg_name = package if pkg.id == "__package__" else module
        else:
            pkg_name = _literal_str(pkg)
            if pkg is not None and pkg_name is None and level:
                return [None]  # a computed package for a relative name
        return [_resolve(name[level:], level, pkg_name)]
    level_node = args.get("level", ast.Constant(0))
    if not (isinstance(level_node, ast.Constant) and type(level_node.value) is int):
        return [None]
    base = _resolve(name, level_node.value, package)  # __import__ takes the package from globals(): its own
    fromlist = args.get("fromlist")
    if fromlist is None or (isinstance(fromlist, ast.Constant) and fromlist.value is None):
        return [base]
    items = fromlist.elts if isinstance(fromlist, (ast.List, ast.Tuple)) else None
    if items is None or any(_literal_str(e) is None for e in items):
        return [base, None]
    if base is None:
        return [None]
    return [base] + [f"{base}.{_literal_str(e)}" for e in items if _literal_str(e) != "*"]


def _layer_ok_lines(source: str) -> dict[int, str]:
    """line -> reason of each `# layer-ok: <reason>` comment (a real comment: tokenize, not a regex on lines)."""
    return {
        tok.start[0]: m.group(1).strip()
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT and (m := LAYER_OK.search(tok.string))
    }


@dataclass(frozen=True)
class _ImportFunctions:
    """The names the import functions go by in one file: ``importlib`` (and its aliases) and what
    ``from importlib import import_module [as x]`` bound."""

    importlib: frozenset[str]
    import_module: frozenset[str]

    @classmethod
    def of(cls, tree: ast.AST) -> _ImportFunctions:
        importlib_names, import_module_names = {"importlib"}, set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                importlib_names |= {a.asname for a in node.names if a.name == "importlib" and a.asname}
            elif isinstance(node, ast.ImportFrom) and node.module == "importlib" and node.level == 0:
                import_module_names |= {a.asname or a.name for a in node.names if a.name == "import_module"}
        return cls(frozenset(importlib_names), frozenset(import_module_names))

    def kind(self, node: ast.AST) -> str | None:
        """``import_module`` or ``__import__`` where ``node`` names one of them, else None."""
        if isinstance(node, ast.Name) and node.id == "__import__":
            return "__import__"
        if isinstance(node, ast.Name):
            return "import_module" if node.id in self.import_module else None
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
            return None
        if node.attr == "import_module" and node.value.id in self.importlib:
            return "import_module"
        if node.attr == "__import__" and node.value.id in (*self.importlib, "builtins"):
            return "__import__"
        return None


def scan_imports(path: Path, module: str | None = None) -> list[Import]:
    """Every import in a file (function-level ones included), resolved to absolute module names.

    ``module`` is the file's own dotted name, against which relative imports resolve; a package's
    ``__init__.py`` is the package itself. ``from a import b`` yields ``a`` and ``a.b`` (``b`` may be a module
    or a name in ``a``: the callers tell them apart). A dynamic import yields its module where its arguments
    are string literals, and an Import whose name is None where they are not (or where a bare reference to
    ``importlib.import_module`` / ``__import__`` escapes, e.g. into ``map``)."""
    source = path.read_text()
    tree = ast.parse(source)
    package = (module if path.name == "__init__.py" else module.rpartition(".")[0]) if module else None
    package = package or None
    ok_lines = _layer_ok_lines(source)
    functions = _ImportFunctions.of(tree)
    found: list[Import] = []

    def add(node: ast.AST, names: list[str | None]) -> None:
        reason = next((ok_lines[n] for n in range(node.lineno, node.end_lineno + 1) if n in ok_lines), "")
        found.extend(Import(node.lineno, n, ast.unparse(node), reason) for n in names)

    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            add(node, [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", node.level, package)
            add(node, [base, *(f"{base}.{a.name}" for a in node.names if a.name != "*")] if base else [None])
        elif isinstance(node, ast.Call) and (kind := functions.kind(node.func)):
            called.add(id(node.func))
            add(node, _dynamic_targets(node, kind, module, package))
    escaped = (n for n in ast.walk(tree) if id(n) not in called and functions.kind(n))
    for node in escaped:
        if not isinstance(getattr(node, "ctx", None), ast.Store):  # `import_module = ...` binds; it loads nothing
            add(node, [None])
    return sorted(found, key=lambda i: i.line)


# -- the files and modules of the layers ----------------------------------------------------------------------
def layer_of(module: str) -> str:
    """The layer of a vidseek module: its folder, ``vidseek.<layer>.…``."""
    parts = module.split(".")
    if parts[0] != "vidseek" or len(parts) < 2 or parts[1] not in LAYERS:
        raise ValueError(f"{module} is not a module of a vidseek layer")
    return parts[1]


def module_name(path: Path, root: Path = ROOT) -> str:
    return ".".join(("vidseek", *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The file of a vidseek module (a layer's, or the namespace's own in vidseek/); None if it has none."""
    parts = name.split(".")
    if parts[0] != "vidseek":
        return None
    base, rest = (
        (root / parts[1], parts[2:]) if len(parts) > 1 and parts[1] in FOLDERS else (root / "vidseek", parts[1:])
    )
    candidates = [base.joinpath(*rest, "__init__.py")] + ([base.joinpath(*rest[:-1], rest[-1] + ".py")] if rest else [])
    return next((f for f in candidates if f.is_file()), None)


def layer_files(root: Path = ROOT) -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (root / folder).rglob("*.py"))


# -- the rules ------------------------------------------------------------------------------------------------
def layer_violations(root: Path = ROOT) -> list[str]:
    """One line per import in a layer folder that points to a layer above, to a bare layer folder
    (``import operators``: a second copy beside vidseek's), or that the scanner cannot read."""
    bad = []
    for path in layer_files(root):
        module, where = module_name(path, root), path.relative_to(root)
        own = LAYERS.index(layer_of(module))
        for imp in scan_imports(path, module):
            at = f"{where}:{imp.line}: `{imp.form}`"
            if imp.name is None:
                if not imp.ok:
                    bad.append(
                        f"{at} imports what the layer check cannot read; make it static or mark the line `# layer-ok: <why>`"
                    )
                continue
            parts = imp.name.split(".")
            if parts[0] in OLD_TOP_LEVEL:
                bad.append(f"{at} imports the bare folder {parts[0]}; use vidseek.{parts[0]}")
            elif parts[0] != "vidseek" or len(parts) == 1:
                continue
            elif parts[1] in LAYERS:
                if LAYERS.index(parts[1]) > own:
                    bad.append(f"{at}: {LAYERS[own]} module {module} imports {parts[1]}, a layer above")
            elif module_file(imp.name, root):  # vidseek.__main__ and the like; not a name of vidseek/__init__.py
                bad.append(f"{at}: {module} imports {imp.name}, which belongs to no layer")
    return list(dict.fromkeys(bad))  # `from a import b, c` yields a, a.b and a.c: one line for the three


def is_ray(name: str) -> bool:
    return name == "ray" or name.startswith("ray.")


def operators_closure(root: Path = ROOT) -> tuple[dict[str, str | None], list[str]]:
    """The vidseek modules that importing operators/ loads — every operators module, what they import
    (function-level imports included), transitively, and the packages above each — each with the module that
    pulled it in (None: a start); and one line per Ray import among them, or import the scanner cannot read
    (in operators' reach, a `# layer-ok:` reason vouches for Ray-freedom too)."""
    via: dict[str, str | None] = {}
    queue: deque[str] = deque()

    def reach(name: str, parent: str | None) -> None:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
            m = ".".join(parts[:i])
            if m not in via and module_file(m, root):
                via[m] = parent
                queue.append(m)

    for path in sorted((root / "operators").rglob("*.py")):
        reach(module_name(path, root), None)
    bad = []
    while queue:
        m = queue.popleft()
        path = module_file(m, root)
        for imp in scan_imports(path, m):
            where = f"({path.relative_to(root)}:{imp.line})"
            if imp.name is None and not imp.ok:
                bad.append(f"{_chain(via, m)}: `{imp.form}` cannot be checked {where}")
            elif imp.name and is_ray(imp.name):
                bad.append(f"{_chain(via, m)} imports {imp.name} {where}")
            elif imp.name and imp.name.split(".")[0] == "vidseek":
                reach(imp.name, m)
    return via, list(dict.fromkeys(bad))


def _chain(via: dict[str, str | None], m: str | None) -> str:
    """``a -> b -> m``: how the closure reached ``m`` from an operators module."""
    names = []
    while m is not None:
        names.append(m)
        m = via[m]
    return " -> ".join(reversed(names))


def test_operators_import_no_ray():
    """The rule, read statically: nothing operators/ imports, at any depth and in any function, is Ray."""
    via, bad = operators_closure()
    operators = {module_name(p) for p in (ROOT / "operators").rglob("*.py")}
    assert len(operators) >= 6 and operators <= via.keys()
    assert not bad, "operators reach Ray:\n" + "\n".join(bad)


def test_operators_import_no_ray_at_runtime():
    """The same at import time, which also sees Ray pulled in by a third-party package (the static rule
    follows only vidseek's modules); it misses what functions import when they run."""
    modules = sorted(p.stem for p in (ROOT / "operators").glob("*.py") if p.stem != "__init__")
    code = (
        "import sys\n"
        + "".join(f"import vidseek.operators.{m}\n" for m in modules)
        + "bad = [m for m in sys.modules if m == 'ray' or m.startswith('ray.')]\nprint(bad)\n"
        + "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"operators pulled in Ray: {proc.stdout} {proc.stderr[-500:]}"
    assert len(modules) >= 6


def test_decoder_and_encoder_work_on_plain_dicts(h264_mp4, tiny_clip):
    from vidseek.operators.decode import VideoDecoder
    from vidseek.operators.encode import ImageEncoder

    dec = VideoDecoder(tiny_clip.preprocess, "uniform:3")
    batches = list(dec({"path": [str(h264_mp4)], "video_id": ["v"]}))
    assert [b["kind"][0] for b in batches] == ["frame", "end"]
    enc = ImageEncoder("tiny-random", device="cpu")
    out = enc(batches[0]["frame"])
    assert out.shape == (3, tiny_clip.embed_dim) and str(out.dtype) == "float32"


def test_no_module_imports_a_layer_above_its_own():
    assert len(layer_files()) > 60
    bad = layer_violations()
    assert not bad, "\n".join(bad)


def test_tests_and_benchmarks_import_through_the_namespace():
    bad = [
        f"{p.relative_to(ROOT)}:{imp.line}: {imp.name}"
        for folder in ("tests", "bench")
        for p in (ROOT / folder).rglob("*.py")
        for imp in scan_imports(p)
        if imp.name and imp.name.split(".")[0] in OLD_TOP_LEVEL
    ]
    assert not bad, "\n".join(bad)


def test_every_layer_folder_is_a_package_of_the_namespace():
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert cfg["package-dir"] == {f"vidseek.{f}": f for f in FOLDERS}
    packages = {module_name(p.parent) for p in layer_files() if p.name == "__init__.py"}
    assert set(cfg["packages"]) == packages | {"vidseek"}  # every folder with code ships, under vidseek


# -- the scanner and the rules on planted code: each form resolves, and each rule can fail ----------------------
def _scan(tmp_path: Path, source: str, module: str, name: str = "m.py") -> list[tuple[int, str | None]]:
    f = tmp_path / name
    f.write_text(source)
    return [(i.line, i.name) for i in scan_imports(f, module)]


def test_scanner_resolves_static_imports(tmp_path):
    source = (
        "import os, vidseek.store.video_store as vs\n"  # 1
        "from vidseek import pipeline\n"  # 2
        "from vidseek.operators.decode import VideoDecoder, probe\n"  # 3
        "from . import fusion\n"  # 4
        "from .params import SearchParams\n"  # 5
        "from .. import store\n"  # 6
        "from ..store.filters import *\n"  # 7
        "def later():\n"  # 8
        "    from vidseek.apps.cli import main\n"  # 9
    )
    assert _scan(tmp_path, source, "vidseek.retrieval.search") == [
        (1, "os"),
        (1, "vidseek.store.video_store"),
        (2, "vidseek"),
        (2, "vidseek.pipeline"),
        (3, "vidseek.operators.decode"),
        (3, "vidseek.operators.decode.VideoDecoder"),
        (3, "vidseek.operators.decode.probe"),
        (4, "vidseek.retrieval"),
        (4, "vidseek.retrieval.fusion"),
        (5, "vidseek.retrieval.params"),
        (5, "vidseek.retrieval.params.SearchParams"),
        (6, "vidseek"),
        (6, "vidseek.store"),
        (7, "vidseek.store.filters"),
        (9, "vidseek.apps.cli"),
        (9, "vidseek.apps.cli.main"),
    ]


def test_scanner_resolves_relative_imports_of_a_package_init_against_the_package(tmp_path):
    source = "from . import search\nfrom .. import store\nfrom .stages import encode\n"
    assert _scan(tmp_path, source, "vidseek.retrieval", "__init__.py") == [
        (1, "vidseek.retrieval"),
        (1, "vidseek.retrieval.search"),
        (2, "vidseek"),
        (2, "vidseek.store"),
        (3, "vidseek.retrieval.stages"),
        (3, "vidseek.retrieval.stages.encode"),
    ]


def test_scanner_resolves_dynamic_imports_of_literals(tmp_path):
    source = (
        "import importlib\n"  # 1
        "import importlib as il\n"  # 2
        "from importlib import import_module as im\n"  # 3
        "def later():\n"  # 4
        "    importlib.import_module('vidseek.pipeline.index_job')\n"  # 5
        "    il.import_module('.rerank', 'vidseek.retrieval')\n"  # 6
        "    im('..operators.decode', __package__)\n"  # 7
        "    im(name='json')\n"  # 8
        "    __import__('vidseek.store', fromlist=['filters'])\n"  # 9
        "    __import__('thin', globals(), None, [], 2)\n"  # 10
    )
    found = _scan(tmp_path, source, "vidseek.retrieval.search")
    assert [f for f in found if f[0] > 3] == [
        (5, "vidseek.pipeline.index_job"),
        (6, "vidseek.retrieval.rerank"),
        (7, "vidseek.operators.decode"),
        (8, "json"),
        (9, "vidseek.store"),
        (9, "vidseek.store.filters"),
        (10, "vidseek.thin"),
    ]


def test_scanner_reports_what_it_cannot_resolve_and_reads_layer_ok(tmp_path):
    source = (
        "import importlib\n"  # 1
        "def later(name, pkg):\n"  # 2
        "    importlib.import_module(name)\n"  # 3
        "    __import__(f'vidseek.{name}')\n"  # 4
        "    importlib.import_module('.x', pkg)\n"  # 5
        "    from .... import x\n"  # 6: more dots than vidseek.operators.decode's package has parts
        "    load = importlib.import_module  # escapes into a variable\n"  # 7
        "    return importlib.import_module(  # layer-ok: name is one of operators' own, from a fixed table\n"  # 8
        "        name)\n"  # 9
    )
    f = tmp_path / "m.py"
    f.write_text(source)
    found = scan_imports(f, "vidseek.operators.decode")
    assert [(i.line, i.name) for i in found if i.line > 1] == [
        (3, None),
        (4, None),
        (5, None),
        (6, None),
        (7, None),
        (8, None),
    ]
    assert [i.ok for i in found if i.line > 1] == [""] * 5 + ["name is one of operators' own, from a fixed table"]
    # a file outside any package (tests/, bench/) has nothing to resolve a relative import against
    assert _scan(tmp_path, "from . import conftest\n", None) == [(1, None)]


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_layer_rule_catches_planted_violations(tmp_path):
    root = _tree(
        tmp_path,
        {
            "vidseek/__init__.py": "",
            "operators/__init__.py": "",
            "operators/fine.py": "import numpy\nfrom . import rows\nfrom vidseek import _os, operators\n",
            "operators/rows.py": "",
            "operators/up.py": "from vidseek import pipeline\n",
            "operators/late.py": "def f():\n    from ..retrieval.search import search\n",
            "operators/bare.py": "import store.filters\n",
            "operators/dyn.py": "import importlib\n\ndef f(n):\n    return importlib.import_module(n)\n",
            "operators/dyn_ok.py": "import importlib\n\ndef f(n):\n    return importlib.import_module(n)  # layer-ok: n is 'rows'\n",
            "operators/entry.py": "import vidseek.__main__\n",
            "vidseek/__main__.py": "",
            "pipeline/__init__.py": "from vidseek.operators import rows\nimport importlib\nimportlib.import_module('vidseek.apps')\n",
        },
    )
    assert layer_violations(root) == [
        "operators/bare.py:1: `import store.filters` imports the bare folder store; use vidseek.store",
        "operators/dyn.py:4: `importlib.import_module(n)` imports what the layer check cannot read; make it static or mark the line `# layer-ok: <why>`",
        "operators/entry.py:1: `import vidseek.__main__`: vidseek.operators.entry imports vidseek.__main__, which belongs to no layer",
        "operators/late.py:2: `from ..retrieval.search import search`: operators module vidseek.operators.late imports retrieval, a layer above",
        "operators/up.py:1: `from vidseek import pipeline`: operators module vidseek.operators.up imports pipeline, a layer above",
        "pipeline/__init__.py:3: `importlib.import_module('vidseek.apps')`: pipeline module vidseek.pipeline imports apps, a layer above",
    ]


def test_the_ray_rule_follows_imports_from_operators_to_ray(tmp_path):
    root = _tree(
        tmp_path,
        {
            "vidseek/__init__.py": "",
            "operators/__init__.py": "",
            "operators/a.py": "from ..store import s\n",
            "operators/b.py": "import numpy\n",
            "store/__init__.py": "",
            "store/s.py": "from . import t\n",
            "store/t.py": "def f():\n    import ray.data\n",
            "store/u.py": "import ray\n",  # operators never reach it
        },
    )
    via, bad = operators_closure(root)
    assert bad == ["vidseek.operators.a -> vidseek.store.s -> vidseek.store.t imports ray.data (store/t.py:2)"]
    assert "vidseek.store.u" not in via and {"vidseek", "vidseek.operators", "vidseek.store"} <= via.keys()
    (root / "operators/b.py").write_text("import importlib\nimportlib.__import__('ray')\n")
    assert operators_closure(root)[1][0] == "vidseek.operators.b imports ray (operators/b.py:2)"


def test_every_cited_design_doc_exists():
    # the design lives in docs/; a docstring that cites a doc which is not there sends a newcomer nowhere
    cited: dict[str, list[str]] = {}
    for path in ROOT.rglob("*.py"):
        if ".venv" in path.parts or "vidseek-demo-library" in path.parts:
            continue
        for doc in re.findall(r"docs/([\w.-]+\.md)", path.read_text(errors="replace")):
            cited.setdefault(doc, []).append(str(path.relative_to(ROOT)))
    missing = {doc: files for doc, files in cited.items() if not (ROOT / "docs" / doc).is_file()}
    assert cited and not missing, missing


# -- function length: none over 80 lines in the layers but today's offenders ---------------------------------
# (lines today) per function; an entry goes when its function is split, and none is added
LONG_FUNCTIONS = {}


def test_no_function_in_the_layers_is_over_80_lines_but_todays_offenders():
    from function_lengths import LAYERS, long_functions

    found = {
        f"{where.split(':')[0]} {name}": lines for lines, where, name in long_functions([ROOT / f for f in LAYERS], 80)
    }
    new = {f: n for f, n in found.items() if f not in LONG_FUNCTIONS or n > LONG_FUNCTIONS[f]}
    assert not new, f"functions over 80 lines (split them; tests/function_lengths.py lists them): {new}"
    gone = sorted(set(LONG_FUNCTIONS) - set(found))
    assert not gone, f"no longer over 80 lines: remove them from LONG_FUNCTIONS {gone}"
