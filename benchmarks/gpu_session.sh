#!/usr/bin/env bash
# Every GPU figure issue 19 asks for, in one run on a lent GPU machine (the device tool's $OUT collects them):
# perf with its compiled keys, the step at the recipe's batch plain / channels_last / compiled, the single-rank
# DDP overhead, the scaling over the GPUs present, a profile of the step, and the CUDA code paths.
#
#   bash benchmarks/gpu_session.sh OUT_DIR        # about 10 minutes on one H100/H200
set -euo pipefail
out=${1:?usage: gpu_session.sh OUT_DIR}
mkdir -p "$out"
py=${PYTHON:-python}
step() { "$py" benchmarks/train_step.py --precision bf16 --batch 32 --steps 5 --json "$@"; }
{
  step
  step --channels-last
  step --channels-last --compile
  step --ddp
} > "$out/train_step.jsonl"
"$py" benchmarks/profile_step.py --precision bf16 --batch 32 --channels-last > "$out/profile_step.txt"
gpus=$("$py" -c "import torch; print(torch.cuda.device_count())")
ranks=$(for n in 1 2 4 8; do [ "$n" -le "$gpus" ] && printf '%s ' "$n"; done)
if [ "$gpus" -gt 1 ]; then
  "$py" benchmarks/ddp_scaling.py --ranks $ranks --batch-per-rank 4 --json > "$out/ddp_scaling.json"
fi
"$py" -m spadekit.cli.main perf --device cuda --batch 32 --json "$out/perf.json" > "$out/perf.txt"
"$py" -m spadekit.cli.main prepare toyscapes --out "$out/toy" --set num_train=64 --set num_val=8 > /dev/null
"$py" benchmarks/cuda_paths.py "$out/toy" "$out/cuda_runs" > "$out/cuda_paths.txt"
rm -rf "$out/toy" "$out/cuda_runs"
