#!/usr/bin/env bash
# The one prepared GPU check (docs/gpu.md): ≤ 8 minutes on one H100/H200 with 16 cores. Run it first
# whenever a GPU machine is available, and record its JSON, with the card, in bench/RESULTS.md.
#
#   bash bench/gpu_check.sh [--wheels DIR] [--out FILE] [--smoke]
#
#   --wheels DIR  install what this Python lacks from wheels carried along (a GPU machine here reaches no
#                 package registry): pip --no-index --find-links DIR. Make DIR on a machine with a registry
#                 with bench/gpu_wheels.sh; Ray's wheel is larger than one transfer may carry, so that script
#                 splits it, and this one joins the parts first.
#   --out FILE    where the JSON goes (default: $OUT/gpu_check.json on the device machine, else
#                 out/gpu_check.json: an ignored folder, so a run leaves nothing untracked in the checkout)
#   --smoke       CPU, tiny model, seconds: proves the script runs end to end (CI does this on every run)
#
# Steps: 1. install what is missing  2. the gpu-marked tests  3. bench/gpu_pipeline.py (encode-only bf16
# img/s eager and compiled, decode-only and end to end at fps:1 and keyframes, GPU utilisation, CPU seconds
# per role)  4. one JSON: the card's name, the tests' outcome, the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
wheels="" out="${OUT:-out}/gpu_check.json" smoke=0
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) wheels=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --smoke) smoke=1; shift ;;
    *) echo "gpu_check.sh: unknown argument $1 (see the header of this file)" >&2; exit 2 ;;
  esac
done
mkdir -p "$(dirname "$out")"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
# a checkout works without installing vidseek (vidseek/__init__.py finds the layer folders beside it)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
work=$(mktemp -d -t vidseek-gpu-check-XXXXXX)
trap 'rm -rf "$work"' EXIT

# 1. what is missing, from the carried wheels (module name=pip name)
need="torch=torch open_clip=open_clip_torch decord=decord2 av=av ray=ray pymilvus=pymilvus milvus_lite=milvus-lite \
typer=typer tqdm=tqdm ftfy=ftfy pytest=pytest pytest_timeout=pytest-timeout"
missing=""
for pair in $need; do
  "$PY" -c "import ${pair%%=*}" 2>/dev/null || missing="$missing ${pair#*=}"
done
if [ -n "$missing" ]; then
  if [ -z "$wheels" ]; then
    echo "gpu_check.sh: missing Python packages:$missing; pass --wheels DIR (bench/gpu_wheels.sh makes one)" >&2
    exit 2
  fi
  for first in "$wheels"/*.whl.part-aa; do  # a wheel carried in parts: join them
    [ -e "$first" ] || continue
    cat "${first%.part-aa}".part-* > "${first%.part-aa}"
  done
  "$PY" -m pip install -q --no-index --find-links "$wheels" $missing
fi

# 2. the gpu-marked tests (they skip, saying so, where torch sees no CUDA)
set +e
"$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py --junitxml "$work/gpu_tests.xml" > "$work/gpu_tests.log" 2>&1
tests_rc=$?
set -e
tail -5 "$work/gpu_tests.log"

# 3. the benchmark
bench_args=(--json --compile)
[ "$smoke" = 1 ] && bench_args=(--json --smoke)
"$PY" bench/gpu_pipeline.py "${bench_args[@]}" > "$work/bench.log"
tail -1 "$work/bench.log" > "$work/bench.json"

# 4. one JSON
"$PY" - "$work" "$out" "$tests_rc" "$smoke" <<'EOF'
import json, sys, xml.etree.ElementTree as ET
work, out, tests_rc, smoke = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
suite = ET.parse(f"{work}/gpu_tests.xml").getroot()
suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
tests = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
bench = json.loads(open(f"{work}/bench.json").read())
result = {"card": bench["device"], "smoke": smoke, "gpu_tests": {**tests, "exit_code": tests_rc}, "bench": bench}
open(out, "w").write(json.dumps(result, indent=1) + "\n")
print(f"gpu_check: card {result['card']}, gpu tests {tests}, encode-only {bench['encode_only_img_s']} img/s -> {out}")
sys.exit(0 if tests_rc == 0 else 1)
EOF
