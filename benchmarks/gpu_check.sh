#!/usr/bin/env bash
# One prepared GPU session (device machine: torch present; nnunetv2 and friends carried as pure-Python wheels in .whl).
# Writes every log to $OUT. Usage on the device: bash benchmarks/gpu_check.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:$PWD/src || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/nvidia-smi.txt"
# 1) speed + accuracy: the paper-sized nnResU-Net (upsample decoder), patch 48x192x192, volume 98x398x465, step 0.3,
#    fp16 autocast; references: fp64 network + fp64 accumulation, and stock's fp16 tile outputs + fp64 accumulation
timeout 140 python3 benchmarks/inference_speed.py --gpu-size --repeats 2 2>&1 | tee "$OUT/speed_fp16.log"
# 2) the same with a true float32 forward in our engine (TF32 off), speed only
timeout 70 python3 benchmarks/inference_speed.py --gpu-size --repeats 1 --amp float32 --no-reference 2>&1 \
  | tee "$OUT/speed_fp32.log"
