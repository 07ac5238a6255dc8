#!/usr/bin/env bash
# One NVIDIA GPU, a few minutes: bfloat16 training img/s of Inception-v4 and Inception-ResNet-v2 at
# 299x299 with a large batch, beside timm (AMP bf16, NCHW and channels_last) in the same process.
#   bash scripts/gpu_benchmark.sh [OUT_DIR]      (BATCH=128 by default)
# Needs jax with CUDA, flax, optax, clu, ml-collections, torch and timm; no TensorFlow.
set -euo pipefail
out=${1:-/tmp/gpu_benchmark}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
for model in inception_v4 inception_resnet_v2; do
  python3 scripts/benchmark.py --model "$model" --mode train --dtype bfloat16 --batch_size "${BATCH:-128}" \
    --steps 5 --repeats 3 --compare timm --json "$out/$model.json" 2>&1 | grep -v "^[WI][0-9]\{4\} " | tee "$out/$model.txt"
done
