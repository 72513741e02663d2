#!/usr/bin/env bash
# GPU checks: search and training step time and memory for fp32/bf16 x channels_last, a quick
# end-to-end search on CUDA, and the GPU-marked tests. Writes under ${OUT:-/tmp/gpu}.
# SKIP_SEARCH_BENCH=1 leaves out the search parts (measured before, see benchmarks/results).
# Expects the project and its missing dependencies as wheels in .whl/ (see the device notes).
set -uo pipefail
out=${OUT:-/tmp/gpu}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$out/gpu.txt"

for stage in $([ "${SKIP_SEARCH_BENCH:-0}" = 1 ] || echo 1 2 3); do
  for amp in off bf16; do
    for cl in off on; do
      timeout 120 python3 benchmarks/search_step.py --schedule paper-cifar10 --stage "$stage" \
        --batch-size 96 --steps 6 --device cuda --amp "$amp" --channels-last "$cl" \
        | tee -a "$out/bench.jsonl"
    done
  done
done

for amp in off bf16; do
  for cl in off on; do
    timeout 120 python3 benchmarks/train_step.py --recipe paper-cifar --device cuda \
      --amp "$amp" --channels-last "$cl" | tee -a "$out/train-bench.jsonl"
  done
done
timeout 120 python3 benchmarks/train_step.py --recipe paper-imagenet --batch-size 256 \
  --device cuda --amp off --steps 10 | tee -a "$out/train-bench.jsonl"
timeout 120 python3 benchmarks/train_step.py --recipe paper-imagenet --batch-size 256 \
  --device cuda --amp bf16 --channels-last on --steps 10 | tee -a "$out/train-bench.jsonl"
if [ "${SKIP_SEARCH_BENCH:-0}" != 1 ]; then
  start=$(date +%s)
  timeout 240 python3 -m pdarts_cli search --dataset digits --schedule quick --device cuda \
    --out /tmp/runs/gpu-quick > "$out/quick.log" 2>&1
  echo "quick search exit $? in $(( $(date +%s) - start ))s" | tee -a "$out/quick.log"
  tail -5 "$out/quick.log"
  cp /tmp/runs/gpu-quick/metrics.jsonl "$out/quick-metrics.jsonl" 2>/dev/null
fi

timeout 120 python3 -m pytest tests -m gpu -q -p no:cacheprovider 2>&1 | tail -5 | tee "$out/pytest-gpu.txt"
