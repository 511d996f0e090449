"""Fixed costs of an index job: what a job pays before (and around) its first video, measured part by part.

Each job runs in a fresh process (cold imports, as `vidseek index` pays them), on a small library (the
fixed costs dominate it), and reports `IndexSummary.phases` (pipeline/index_job.py):

  import       `import vidseek.pipeline.index_job` (torch, open_clip, numpy; Ray is imported later)
  model        the driver's model load, for the identity stamp and the preprocess config
  plan         store open, model check and resume planning against the store
  ray_start    `ray.init` (local Ray: GCS, raylet, workers)
  first_video  streaming start → first finished video (actor start-up, worker imports, model load in the
               CLIP actor, pipeline fill)
  ray_stop     `ray.shutdown` and its temp dir
and the job's wall clock against the streaming time (the rest is fixed cost).

    python bench/fixed_costs.py --model tiny-random
    python bench/fixed_costs.py --model ViT-B-32 --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from media import make_library  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[4])
from vidseek.pipeline.index_job import IndexConfig, run_index
t_import = time.perf_counter() - t0
s = run_index(IndexConfig(source=sys.argv[1], store=sys.argv[2], model=sys.argv[3], progress=False))
print(json.dumps({"import": t_import, **s.phases, "job_wall": s.wall_s, "process_wall": time.perf_counter() - t0,
                  "indexed": s.indexed, "frames": s.frames}))
"""


def one_job(lib: Path, store: str, model: str) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(lib), store, model, str(ROOT.parent)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode:
        raise SystemExit(f"the job failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny-random")
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--media", default=os.environ.get("VIDSEEK_BENCH_MEDIA", "/tmp/vidseek-bench-media"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    lib = make_library(Path(args.media), "360p", args.videos, args.seconds)
    with tempfile.TemporaryDirectory(prefix="vidseek-fixed-") as tmp:
        fresh = one_job(lib, str(Path(tmp) / "a.db"), args.model)  # an empty store: every video indexed
        resumed = one_job(lib, str(Path(tmp) / "a.db"), args.model)  # the same again: all skipped, no Ray
    fixed = fresh["process_wall"] - fresh.get("stream", 0.0) + fresh.get("first_video", 0.0)
    parts = ["import", "model", "plan", "ray_start", "first_video", "ray_stop"]
    print(f"fixed costs, model {args.model}, {args.videos} × {args.seconds} s 360p (seconds):")
    for p in parts:
        print(f"  {p:12s} {fresh.get(p, 0.0):6.2f}")
    print(
        f"  sum {sum(fresh.get(p, 0.0) for p in parts):.2f} s of a {fresh['process_wall']:.2f} s process "
        f"(streaming after the first video: {fresh.get('stream', 0.0) - fresh.get('first_video', 0.0):.2f} s); "
        f"a re-run with nothing to do: {resumed['process_wall']:.2f} s"
    )
    if args.json:
        print(json.dumps({"model": args.model, "fresh": fresh, "resumed": resumed, "fixed_s": fixed}))


if __name__ == "__main__":
    main()
