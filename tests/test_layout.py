"""Architecture rules that keep the code base navigable: operators are Ray-free."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_operators_import_no_ray():
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


# -- layers (docs/architecture.md): a module imports only its own layer and the ones below -----------------
# One folder per layer, bottom to top; each is the package vidseek.<folder> (pyproject.toml maps them).
LAYERS = ["operators", "store", "retrieval", "pipeline", "apps"]
FOLDERS = LAYERS
OLD_TOP_LEVEL = ("operators", "store", "retrieval", "pipeline", "apps")  # importable bare only from a checkout


def layer_of(module: str) -> str:
    """The layer of a vidseek module: its folder, ``vidseek.<layer>.…``."""
    parts = module.split(".")
    if parts[0] != "vidseek" or len(parts) < 2 or parts[1] not in LAYERS:
        raise ValueError(f"{module} is not a module of a vidseek layer")
    return parts[1]


def vidseek_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every vidseek import in a file (function-level ones included), and of every bare
    import of a layer folder (``import operators``), which would load a second copy beside vidseek's."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, n) for n in names if n.split(".")[0] in ("vidseek", *OLD_TOP_LEVEL)]
    return found


def module_name(path: Path) -> str:
    return ".".join(("vidseek", *path.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")


def layer_files() -> list[Path]:
    return [p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")]


def test_no_module_imports_a_layer_above_its_own():
    bad = []
    for path in layer_files():
        module = module_name(path)
        for line, target in vidseek_imports(path):
            if target.split(".")[0] != "vidseek":
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports {target}; use vidseek.{target}")
            elif target != "vidseek" and LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module)):
                bad.append(
                    f"{path.relative_to(ROOT)}:{line}: {layer_of(module)} {module} imports {layer_of(target)} {target}"
                )
    assert len(layer_files()) > 60
    assert not bad, "\n".join(bad)


def test_tests_and_benchmarks_import_through_the_namespace():
    bad = [
        f"{p.relative_to(ROOT)}:{line}: {target}"
        for folder in ("tests", "bench")
        for p in (ROOT / folder).rglob("*.py")
        for line, target in vidseek_imports(p)
        if target.split(".")[0] != "vidseek"
    ]
    assert not bad, "\n".join(bad)


def test_every_layer_folder_is_a_package_of_the_namespace():
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert cfg["package-dir"] == {f"vidseek.{f}": f for f in FOLDERS}
    packages = {module_name(p.parent) for p in layer_files() if p.name == "__init__.py"}
    assert set(cfg["packages"]) == packages | {"vidseek"}  # every folder with code ships, under vidseek


def test_the_layer_rule_catches_a_function_level_import(tmp_path):
    """The check reads imports inside functions too (they once hid a pipeline <-> retrieval cycle)."""
    f = tmp_path / "m.py"
    f.write_text("def later():\n    from vidseek.pipeline.index_job import run_index\n    import operators.decode\n")
    assert vidseek_imports(f) == [(2, "vidseek.pipeline.index_job"), (3, "operators.decode")]
    assert LAYERS.index(layer_of("vidseek.pipeline.index_job")) > LAYERS.index(layer_of("vidseek.retrieval.search"))


def test_every_cited_design_doc_exists():
    # the design lives in docs/; a docstring that cites a doc which is not there sends a newcomer nowhere
    import re

    cited: dict[str, list[str]] = {}
    for path in ROOT.rglob("*.py"):
        if ".venv" in path.parts or "vidseek-demo-library" in path.parts:
            continue
        for doc in re.findall(r"docs/([\w.-]+\.md)", path.read_text(errors="replace")):
            cited.setdefault(doc, []).append(str(path.relative_to(ROOT)))
    missing = {doc: files for doc, files in cited.items() if not (ROOT / "docs" / doc).is_file()}
    assert cited and not missing, missing
