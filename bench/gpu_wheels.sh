#!/usr/bin/env bash
# Wheels for bench/gpu_check.sh on a GPU machine that reaches no package registry (run this where one is
# reachable; the GPU machine already has torch, torchvision, pyarrow and timm):
#
#   bash bench/gpu_wheels.sh DIR
#
# Ray's wheel (~79 MB) is larger than one transfer to that machine may carry (64 MiB): it is split into
# parts (DIR/ray-….whl.part-aa, -ab) for two transfers, and gpu_check.sh joins them. Everything else stays whole.
set -euo pipefail
dir=${1:?usage: bash bench/gpu_wheels.sh DIR}
mkdir -p "$dir"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
"$PY" -m pip download -q --only-binary :all: --python-version 3.11 -d "$dir" \
  open_clip_torch decord2 av "ray[data]>=2.60,<2.61" "pymilvus>=3.0,<3.1" "milvus-lite>=3.2,<3.3" \
  typer tqdm ftfy wcwidth pytest pytest-timeout
for whl in "$dir"/ray-*.whl; do
  [ -e "$whl" ] || continue
  split -b 40M "$whl" "$whl.part-"
  rm "$whl"
done
ls -la "$dir"
