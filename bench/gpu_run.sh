#!/usr/bin/env bash
# One run of the bench on a lent NVIDIA GPU (H100/H200): the tuning cache, then the full benchmark,
# everything under $OUT. Under 8 minutes of wall time: each step has a time budget (it starts no new
# shape past it and still writes its report) and a hard timeout behind that.
#
# Run from the repository root, with `build` (make shaders, done here), `.gl` and `.whl` carried
# (/work/shared/gpu/prepare-carry.sh makes the last two: Vulkan loader debs; vulkan, cffi, pycparser wheels):
#   bash bench/gpu_run.sh
# $OUT gets (7 files, 2 folders deep at most): log.txt, clocks.txt, tune.md, <device>.json (the cache),
# bench/results.md, bench/results.json, bench/roofline.png (if matplotlib is there).
set -uo pipefail
OUT=${OUT:-/tmp/shaderkit-out}
PY=${PY:-python3}          # the GPU image's python3 holds PyTorch
SUITE=${BENCH_SUITE:-}     # e.g. "--suite micro" for a smoke test of this script on lavapipe
mkdir -p "$OUT/bench"
export PYTHONUNBUFFERED=1
start=$SECONDS
step() { echo "== $(date -u +%H:%M:%S) [$((SECONDS - start)) s] $*"; }

main() {
step "set-up: Vulkan loader and wheels"
if [ -d .gl ]; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:${PYTHONPATH:-} || return 1
fi
# An NVIDIA ICD file may name a library that is not installed (seen on the lent H100): point the
# loader at a copy naming libEGL_nvidia.so.0, which is.
if [ -z "${VK_DRIVER_FILES:-}" ]; then
  for icd in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
             /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do
    [ -f "$icd" ] || continue
    lib=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["ICD"]["library_path"])' "$icd")
    if [ -e "$lib" ] || ldconfig -p | grep -q "$(basename "$lib")"; then
      export VK_DRIVER_FILES=$icd
    else
      sed 's#"library_path": *"[^"]*"#"library_path": "libEGL_nvidia.so.0"#' "$icd" > /tmp/nvidia_icd.json
      export VK_DRIVER_FILES=/tmp/nvidia_icd.json
    fi
    echo "VK_DRIVER_FILES=$VK_DRIVER_FILES (library $lib)"
    break
  done
fi

step "device"
nvidia-smi --query-gpu=index,name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.draw,temperature.gpu,pstate \
  --format=csv > "$OUT/clocks.txt" 2>&1; cat "$OUT/clocks.txt"
$PY -c 'from runtime.core.device import Device; print(Device().describe())' || { echo "no Vulkan device"; return 1; }
$PY -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name(0))' \
  || echo "no PyTorch: the peer columns will say n/a"

step "tune: every variant on every conv layer class -> build/tuning/ (budget 100 s)"
timeout 150 $PY -m bench tune $SUITE --budget-s 100 --out "$OUT" || echo "tune: exit status $?"

step "bench: roofline, GEMM + peer, im2col, conv with tuned and heuristic picks (budget 220 s)"
timeout 290 $PY -m bench $SUITE --budget-s 220 --out "$OUT/bench"
status=$?
echo "bench: exit status $status"

step "clocks at the end"
nvidia-smi --query-gpu=index,name,clocks.sm,clocks.max.sm,clocks.mem,power.draw,temperature.gpu,pstate \
  --format=csv,noheader >> "$OUT/clocks.txt" 2>&1; tail -1 "$OUT/clocks.txt"
step "done"
return $status
}

main 2>&1 | tee "$OUT/log.txt"
exit "${PIPESTATUS[0]}"
