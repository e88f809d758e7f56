#!/usr/bin/env bash
# Issue 16's GPU measurements in one prepared device session; every phase in its own time box, every measurement
# flushed to $OUT/results.jsonl as it is made (a phase cut by its box still returns what it measured).
#
#   bash benchmarks/gpu_wheels.sh                  # here, once: nnunetv2 & helpers into .whl/ (git-ignored)
#   bash benchmarks/gpu_check.sh                   # on the device machine (carry .whl); ~9.5 min of boxes in all
#   bash benchmarks/gpu_check.sh --cpu-dry-run     # on a CPU machine: tiny sizes, same code, boxes x BOX_SCALE (6);
#                                                  # compile phases only with DRY_COMPILE=1
#
# Writes to $OUT (default /tmp/synthct-gpu-check): nvidia-smi.txt, gpu_check.log (all output), results.jsonl,
# summary.md (tables + T4 projection). Phases, most wanted first:
#   tiles          per-tile time, counted FLOPs, % of the H200 peak: stock ResidualUNet vs ours eager vs each switch
#   window         sliding window 98x398x465, 1 fold, step 0.3: stock nnUNetPredictor vs ours vs each switch, errors
#   case           process.py-equivalent whole case, 5-fold random-weight model folder, 98x398x465 and 200x512x512
#   train eager    per-iteration train step: stock nnUNetTrainer vs SynthCTTrainerL1 (eager, channels-last)
#   tiles-compile  torch.compile modes per tile (compile cost apart)
#   train compile  stock's default (compiled) vs ours compiled
#   summary        tables and the T4 budget projection
set -uo pipefail
export PYTHONUNBUFFERED=1
DRY=""
[[ "${1:-}" == "--cpu-dry-run" ]] && DRY="--cpu-dry-run"
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/synthct-gpu-check}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: > "$LOG"
if [[ -z $DRY ]]; then
  BOX_SCALE=${BOX_SCALE:-1}
  ls .whl/*.whl > /dev/null 2>&1 || { echo "no wheels in .whl/: run bash benchmarks/gpu_wheels.sh here first" | tee -a "$LOG"; exit 1; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    2>&1 | tee -a "$LOG"
  export PYTHONPATH=/tmp/site:$PWD/src
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/nvidia-smi.txt"
else
  BOX_SCALE=${BOX_SCALE:-6}
  export PYTHONPATH=$PWD/src
fi
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/synthct-torch-compile}
rm -f "$OUT/results.jsonl"

phase() {  # phase SECONDS SCRIPT ARGS...: run one phase under its time box, log its exit status
  local box=$(( $1 * BOX_SCALE )); shift
  echo "=== $(date +%T) $* (time box ${box} s) ===" | tee -a "$LOG"
  timeout -k 5 "$box" "$PY" "$@" $DRY --out "$OUT" >> "$LOG" 2>&1
  local rc=$?
  echo "=== $(date +%T) rc=$rc$( ((rc == 124 || rc == 137)) && echo ' (cut by its time box)') ===" | tee -a "$LOG"
}
phase 90 benchmarks/gpu_inference.py tiles
phase 80 benchmarks/gpu_inference.py window
phase 150 benchmarks/gpu_inference.py case
phase 60 benchmarks/gpu_train_step.py eager
if [[ -z $DRY || ${DRY_COMPILE:-0} == 1 ]]; then  # torch.compile on a small CPU takes minutes per network
  phase 90 benchmarks/gpu_inference.py tiles-compile
  phase 90 benchmarks/gpu_train_step.py compile
else
  echo "=== compile phases skipped in the dry run (DRY_COMPILE=1 runs them) ===" | tee -a "$LOG"
fi
phase 15 benchmarks/gpu_summary.py
cat "$OUT/summary.md" 2>/dev/null
