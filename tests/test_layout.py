"""Architecture rules that keep the code base navigable: operators are Ray-free."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_operators_import_no_ray():
    modules = sorted(p.stem for p in (ROOT / "operators").glob("*.py") if p.stem != "__init__")
    code = ("import sys\n" + "".join(f"import operators.{m}\n" for m in modules)
            + "bad = [m for m in sys.modules if m == 'ray' or m.startswith('ray.')]\nprint(bad)\n"
            + "sys.exit(1 if bad else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"operators pulled in Ray: {proc.stdout} {proc.stderr[-500:]}"
    assert len(modules) >= 6


def test_decoder_and_encoder_work_on_plain_dicts(h264_mp4, tiny_clip):
    from operators.decode import VideoDecoder
    from operators.encode import ImageEncoder

    dec = VideoDecoder(tiny_clip.preprocess, "uniform:3")
    batches = list(dec({"path": [str(h264_mp4)], "video_id": ["v"]}))
    assert [b["kind"][0] for b in batches] == ["frame", "end"]
    enc = ImageEncoder("tiny-random", device="cpu")
    out = enc(batches[0]["frame"])
    assert out.shape == (3, tiny_clip.embed_dim) and str(out.dtype) == "float32"


# -- layers (docs/architecture.md): a module imports only its own layer and the ones below -----------------
LAYERS = ["operators", "store", "retrieval", "jobs", "apps"]  # bottom to top


def layer_of(module: str) -> str:
    """The layer of a vidseek module, by the rules docs/architecture.md draws."""
    top = module.split(".")[0]
    if top == "operators":
        return "operators"
    if module in ("retrieval.store", "retrieval.filters", "retrieval.server_caps"):
        return "store"
    if module.startswith(("retrieval.service", "retrieval.testbed", "pipeline.cli")):
        return "apps"
    return "retrieval" if top == "retrieval" else "jobs"


def vidseek_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every vidseek import in a file, function-level ones included."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, n) for n in names if n.split(".")[0] in ("operators", "pipeline", "retrieval")]
    return found


def test_no_module_imports_a_layer_above_its_own():
    files = [p for pkg in ("operators", "pipeline", "retrieval") for p in (ROOT / pkg).rglob("*.py")]
    bad = []
    for path in files:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for line, target in vidseek_imports(path):
            if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module)):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {layer_of(module)} {module} imports "
                           f"{layer_of(target)} {target}")
    assert len(files) > 40
    assert not bad, "\n".join(bad)


def test_the_layer_rule_catches_a_function_level_import(tmp_path):
    """The check reads imports inside functions too (they once hid a pipeline <-> retrieval cycle)."""
    f = tmp_path / "m.py"
    f.write_text("def later():\n    from pipeline.index_job import run_index\n")
    (line, target), = vidseek_imports(f)
    assert (line, target) == (2, "pipeline.index_job")
    assert LAYERS.index(layer_of(target)) > LAYERS.index(layer_of("retrieval.search"))
