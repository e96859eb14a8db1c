#!/usr/bin/env bash
# The README's GPU rows, on the lent GPU machine (JAX backend, no TensorFlow there; see ../shared/gpu.md):
#   1. the `best` preset (resnet width 32, 60 epochs);
#   2. time from the command's start to the test accuracy of a short bf16 schedule (batch 512, 20 epochs).
# Usage there: bash bench/gpu.sh OUT_DIR   (needs .whl and .gpu-data carried, as gpu.md says)
set -uo pipefail
out=${1:-/tmp/gpu-out}; mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
export KERASCNN_FASHION_MNIST_DIR=$PWD/.gpu-data
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
run() {  # name, timeout, args...
    local name=$1 limit=$2; shift 2
    local start=$EPOCHREALTIME
    timeout "$limit" python3 -m kerascnn.train --no-tensorboard --out "$out/$name" "$@" > "$out/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc wall_s=$(python3 -c "print(round($EPOCHREALTIME - $start, 1))")" | tee -a "$out/summary.txt"
    tail -c 600 "$out/$name.log"; echo
}
run fast 180 --model resnet --model-options '{"width": 32, "depth": [2, 2, 2]}' --epochs 20 --batch-size 512 \
    --mixed-precision --lr 4e-3 --warmup-epochs 1 --label-smoothing 0.1
run best 330 --preset best
rm -f "$out"/*/checkpoint/*.keras
