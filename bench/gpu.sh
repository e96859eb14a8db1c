#!/usr/bin/env bash
# The README's GPU table, in one go on the lent GPU machine (JAX backend, no TensorFlow there; see ../shared/gpu.md):
#   1. plain Keras 3 on JAX, the peer reference (shared/gpu/kerasref.py, run from the shared folder, not copied
#      into the project), the same 0.70M-parameter ResNet (blocks 2,2,2), 12 epochs, target 94 %;
#   2. kerascnn --preset fast;  3. kerascnn --preset best;  4. kerascnn --preset mobilenet (with --full);
# then one table (bench/gpu_table.py): seconds from each command's start to 94 % test accuracy, median epoch,
# compile time (first epoch minus the median), test accuracy. kerascnn's runs use a fresh JAX compilation cache,
# and `fast` runs a second time warm (the cache of the first run).
# Usage there: bash bench/gpu.sh OUT_DIR [--full]   (needs .whl and .gpu-data carried, as gpu.md says, and the
# shared folder: `shared/` in the checkout, or ../shared, or $KERASREF naming kerasref.py)
set -uo pipefail
out=${1:-/tmp/gpu-out}; full=${2:-}; mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
export KERASCNN_FASHION_MNIST_DIR=$PWD/.gpu-data
kerasref=${KERASREF:-}
for candidate in shared/gpu/kerasref.py ../shared/gpu/kerasref.py; do
    [[ -z $kerasref && -f $candidate ]] && kerasref=$candidate
done
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
: > "$out/summary.txt"
timed() {  # name, timeout, command...: runs it with its log in $out/name.log, notes its wall time in summary.txt
    local name=$1 limit=$2; shift 2
    local start=$EPOCHREALTIME
    T0=$start timeout "$limit" "$@" > "$out/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc wall_s=$(python3 -c "print(round($EPOCHREALTIME - $start, 1))")" | tee -a "$out/summary.txt"
    tail -c 600 "$out/$name.log"; echo
}
if [[ -n $kerasref ]]; then
    timed kerasref 180 python3 "$kerasref" --name keras --data .gpu-data --epochs 12 --blocks 2,2,2 --target 0.94 \
        --json "$out/kerasref.json"
else
    echo "kerasref.py not found (shared/gpu, ../shared/gpu or \$KERASREF): the plain-Keras row is left out" | tee -a "$out/summary.txt"
fi
cache=$out/jax-cache; rm -rf "$cache"
train() {  # name, timeout, args...
    local name=$1 limit=$2; shift 2
    timed "$name" "$limit" python3 -m kerascnn.train --no-tensorboard --compile-cache "$cache" --out "$out/$name" "$@"
}
train fast 180 --preset fast
train fast-warm 180 --preset fast
train best 330 --preset best
[[ $full == --full ]] && train mobilenet 500 --preset mobilenet
rm -f "$out"/*/checkpoint/*.keras
python3 bench/gpu_table.py "$out" | tee "$out/table.md"
