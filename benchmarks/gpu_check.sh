#!/usr/bin/env bash
# GPU checks for the search: step time and memory per stage for fp32/bf16 x channels_last,
# a quick end-to-end search on CUDA, and the GPU-marked tests. Writes under ${OUT:-/tmp/gpu}.
# Expects the project and its missing dependencies as wheels in .whl/ (see the device notes).
set -uo pipefail
out=${OUT:-/tmp/gpu}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$out/gpu.txt"

for stage in 1 2 3; do
  for amp in off bf16; do
    for cl in off on; do
      timeout 120 python3 benchmarks/search_step.py --schedule paper-cifar10 --stage "$stage" \
        --batch-size 96 --steps 6 --device cuda --amp "$amp" --channels-last "$cl" \
        | tee -a "$out/bench.jsonl"
    done
  done
done

start=$(date +%s)
timeout 240 python3 -m pdarts_cli search --dataset digits --schedule quick --device cuda \
  --out /tmp/runs/gpu-quick > "$out/quick.log" 2>&1
echo "quick search exit $? in $(( $(date +%s) - start ))s" | tee -a "$out/quick.log"
tail -5 "$out/quick.log"
cp /tmp/runs/gpu-quick/metrics.jsonl "$out/quick-metrics.jsonl" 2>/dev/null

timeout 120 python3 -m pytest tests -m gpu -q -p no:cacheprovider 2>&1 | tail -5 | tee "$out/pytest-gpu.txt"
