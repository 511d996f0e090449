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
    out = enc(batches[0])
    assert out["embedding"].shape == (3, tiny_clip.embed_dim) and "frame" not in out
