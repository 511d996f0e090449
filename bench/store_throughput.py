"""Index throughput into a Milvus server against Milvus Lite: the same library, the same job, one run.

Indexes one generated library twice with `run_index` (local Ray): into a fresh Milvus Lite store (the
driver writes it) and into a fresh prefix on a Milvus server (a writer actor writes it). Prints frames/s and
seconds of video per second for each, and the server's ratio to Lite. The two jobs run back to back on the
same machine, so their ratio is what to compare.

    python bench/store_throughput.py --server http://127.0.0.1:19530               # 20 × 120 s, 360p
    python bench/store_throughput.py --server URI --videos 4 --seconds 10 --json     # smoke size
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from media import make_library  # noqa: E402

from vidseek.pipeline.index_job import IndexConfig, run_index  # noqa: E402


def index_into(lib: Path, store: str, model: str, prefix: str) -> dict:
    t = time.perf_counter()
    s = run_index(
        IndexConfig(source=str(lib), store=store, model=model, pretrained="none", prefix=prefix, progress=False)
    )
    wall = time.perf_counter() - t
    return {
        "indexed": s.indexed,
        "failed": s.failed,
        "frames": s.frames,
        "wall_s": round(wall, 1),
        "frames_per_s": round(s.frames / wall, 1),
        "video_s_per_s": round(s.video_seconds / wall, 1),
        "phases": {k: round(v, 2) for k, v in s.phases.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True, help="Milvus server URI")
    ap.add_argument("--model", default="tiny-random")
    ap.add_argument("--resolution", default="360p")
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--media", default=os.environ.get("VIDSEEK_BENCH_MEDIA", "/tmp/vidseek-bench-media"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    lib = make_library(Path(args.media), args.resolution, args.videos, args.seconds)
    tmp = Path(tempfile.mkdtemp(prefix="vidseek-store-bench-"))
    try:
        lite = index_into(lib, str(tmp / "lite.db"), args.model, "vidseek")
        server = index_into(lib, args.server, args.model, f"throughput_{int(time.time())}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "library": f"{args.videos} × {args.seconds} s {args.resolution}",
        "model": args.model,
        "cores": os.cpu_count(),
        "lite": lite,
        "server": server,
        "server_vs_lite_wall": round(lite["wall_s"] / server["wall_s"], 3) if server["wall_s"] else None,
    }
    if args.json:
        print(json.dumps(out))
        return
    print(f"library {out['library']}, model {args.model}, {out['cores']} cores, one run")
    print("| store | videos | frames | wall s | frames/s | video s per s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("lite", "server"):
        r = out[name]
        print(
            f"| {name} | {r['indexed']} | {r['frames']} | {r['wall_s']} | {r['frames_per_s']} | {r['video_s_per_s']} |"
        )
    print(f"server ÷ Lite speed (wall): {out['server_vs_lite_wall']}×")


if __name__ == "__main__":
    main()
