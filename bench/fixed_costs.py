"""Fixed costs of an index job: what a job pays before (and around) its first video, measured part by part.

Each job runs in a fresh process (cold imports, as `vidseek index` pays them), on a small library (the
fixed costs dominate it), and reports `IndexSummary.phases` (pipeline/index_job.py):

  import       `import vidseek.pipeline.index_job` (numpy, PyAV, pymilvus' client; not torch or open_clip)
  model        the driver's model build for the store's stamp: only for a new store (or another model's);
               a store that holds the job's model gives its own stamp, which the CLIP actor confirms
  plan         store open, checks and resume planning against the store
  ray_start    `ray.init` (local Ray: GCS, raylet, workers)
  first_video  streaming start → first finished video (Ray Data's helper actors, worker start-up, the CLIP
               actor importing torch + open_clip and building the model, pipeline fill)
  ray_stop     `ray.shutdown` and its temp dir

Three jobs in a row on one store: the first half of the library into a new store, the second half into
that store (an incremental job: the one a library that grows runs every day), and the whole library again
(nothing to do: no Ray). Beside them, the floor any job built on local Ray Data pays on this machine: a
fresh process that imports Ray, starts it, runs a one-block ``map_batches`` through an actor pool and
stops it (``--no-floor`` skips it). Last, what the CLIP actor's import of open_clip costs, by package
(``python -X importtime`` in a fresh process: torch, torchvision with the ``torch._dynamo`` it imports, timm,
the rest), and its CPU seconds.

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
                  "indexed": s.indexed, "skipped": s.skipped, "frames": s.frames,
                  "torch_imported": "torch" in sys.modules}))
"""
# Ray's own floor: what a Ray Data job with an actor stage pays here before any work of ours
FLOOR = r"""
import json, os, sys, time
t0 = time.perf_counter()
import ray
t_import = time.perf_counter() - t0
t = time.perf_counter()
ray.init(num_cpus=os.cpu_count(), include_dashboard=False, _temp_dir=sys.argv[1], _node_ip_address="127.0.0.1",
         log_to_driver=False, configure_logging=False)
t_init = time.perf_counter() - t
class Same:
    def __call__(self, batch):
        return batch
ctx = ray.data.DataContext.get_current()
ctx.enable_progress_bars = False
ctx.print_on_execution_start = False
t = time.perf_counter()
n = sum(1 for _ in ray.data.from_items([{"x": 1}]).map_batches(Same, concurrency=1).iter_rows())
t_run = time.perf_counter() - t
t = time.perf_counter()
ray.shutdown()
print(json.dumps({"import": t_import, "ray_start": t_init, "first_video": t_run, "ray_stop": time.perf_counter() - t,
                  "process_wall": time.perf_counter() - t0}))
"""
PARTS = ["import", "model", "plan", "ray_start", "first_video", "ray_stop"]
IMPORTED_BY_OPEN_CLIP = ("torch", "torchvision", "timm")  # each first imported by open_clip, in this order


def worker_imports() -> dict:
    """Seconds of ``import open_clip`` in a fresh process, by the packages it pulls in, and its CPU seconds."""
    before = os.times()
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import open_clip"], capture_output=True, text=True, timeout=300
    )
    after = os.times()
    if out.returncode:
        raise SystemExit(f"import open_clip failed:\n{out.stderr[-3000:]}")
    cumulative = {}  # lines: "import time: self_us | cumulative_us | <indent>name"
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cum, name = line[len("import time:") :].split("|")
            if cum.strip().isdigit():
                cumulative.setdefault(name.strip(), int(cum) / 1e6)
    parts = {f"{name}_s": cumulative.get(name, 0.0) for name in IMPORTED_BY_OPEN_CLIP}
    total = cumulative["open_clip"]
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {"total_s": total, **parts, "rest_s": total - sum(parts.values()), "process_cpu_s": cpu}


def _child(args: list[str]) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", *args], env=env, capture_output=True, text=True, timeout=900)
    if out.returncode:
        raise SystemExit(f"the job failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def one_job(lib: Path, store: str, model: str) -> dict:
    return _child([CHILD, str(lib), store, model, str(ROOT.parent)])


def ray_floor(tmp: str) -> dict:
    return _child([FLOOR, str(Path(tmp) / "ray-floor")])


def halves(lib: Path, tmp: Path) -> tuple[Path, Path]:
    """Two folders of links to the library's first and second half."""
    videos = sorted(lib.glob("*.mp4"))
    out = []
    for name, part in (("first", videos[: len(videos) // 2]), ("second", videos[len(videos) // 2 :])):
        d = tmp / name
        d.mkdir()
        for v in part:
            (d / v.name).symlink_to(v)
        out.append(d)
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny-random")
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--media", default=os.environ.get("VIDSEEK_BENCH_MEDIA", "/tmp/vidseek-bench-media"))
    ap.add_argument("--no-floor", action="store_true", help="skip the bare Ray Data job")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.videos < 2:
        ap.error("--videos must be at least 2 (a new-store job and an incremental job)")
    lib = make_library(Path(args.media), "360p", args.videos, args.seconds)
    with tempfile.TemporaryDirectory(prefix="vidseek-fixed-") as tmp:
        first, second = halves(lib, Path(tmp))
        store = str(Path(tmp) / "a.db")
        jobs = {
            "new store": one_job(first, store, args.model),
            "incremental": one_job(second, store, args.model),
            "nothing to do": one_job(second, store, args.model),
        }
        if not args.no_floor:
            jobs["Ray Data floor"] = ray_floor(tmp)
    imports = worker_imports()
    print(f"fixed costs, model {args.model}, {args.videos} × {args.seconds} s 360p, two halves (seconds):")
    print(f"  {'part':12s}" + "".join(f"{name:>16s}" for name in jobs))
    for p in PARTS:
        print(f"  {p:12s}" + "".join(f"{j.get(p, 0.0):16.2f}" for j in jobs.values()))
    print(f"  {'sum':12s}" + "".join(f"{sum(j.get(p, 0.0) for p in PARTS):16.2f}" for j in jobs.values()))
    print(f"  {'process':12s}" + "".join(f"{j['process_wall']:16.2f}" for j in jobs.values()))
    inc, floor = jobs["incremental"], jobs.get("Ray Data floor")
    if floor:
        print(
            f"incremental job ÷ Ray Data floor: {inc['process_wall'] / floor['process_wall']:.2f}× "
            f"({inc['process_wall'] - floor['process_wall']:.1f} s above what Ray itself costs here)"
        )
    print("driver imported torch: " + ", ".join(f"{k} {j.get('torch_imported', '-')}" for k, j in jobs.items()))
    print(
        f"the CLIP actor's `import open_clip`: {imports['total_s']:.2f} s (torch {imports['torch_s']:.2f}, "
        f"torchvision with torch._dynamo {imports['torchvision_s']:.2f}, timm {imports['timm_s']:.2f}, "
        f"rest {imports['rest_s']:.2f}); {imports['process_cpu_s']:.2f} CPU-s for the whole process"
    )
    if args.json:
        print(json.dumps({"model": args.model, "jobs": jobs, "open_clip_import": imports}))


if __name__ == "__main__":
    main()
