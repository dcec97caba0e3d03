#!/usr/bin/env bash
# Every GPU figure of the speed work, in one run on a lent GPU machine, cheapest and most wanted first; each
# result is written as soon as it is measured, so a run cut short still leaves what it finished in OUT_DIR:
#   device.txt         the GPUs and torch version
#   train_step.jsonl   the bf16 step at batch 32: plain, channels_last, single-rank DDP, compiled + channels_last
#   profile_step.txt   the channels_last bf16 step's kernels by device time
#   cuda_paths.txt     NCCL, DDP, SyncBatchNorm, bf16 and fp16 training in a one-rank group
#   ddp_scaling.json   images/s at 1, 2, 4, 8 ranks (only with more than one GPU)
#   perf.json          `spadekit perf --device cuda` with its compiled keys (the longest part: four compilations)
#
#   bash benchmarks/gpu_session.sh OUT_DIR        # set PYTHON to the interpreter with spadekit installed
set -euo pipefail
out=${1:?usage: gpu_session.sh OUT_DIR}
mkdir -p "$out"
py=${PYTHON:-python}
"$py" -c "import torch; print(torch.cuda.device_count(), 'x', torch.cuda.get_device_name(0), 'torch', torch.__version__)" \
  > "$out/device.txt"
step() { "$py" benchmarks/train_step.py --precision bf16 --batch 32 --steps 5 --json "$@" >> "$out/train_step.jsonl"; }
step
step --channels-last
step --ddp
"$py" benchmarks/profile_step.py --precision bf16 --batch 32 --channels-last > "$out/profile_step.txt"
scratch=$(mktemp -d)
"$py" -m spadekit.cli.main prepare toyscapes --out "$scratch/toy" --set num_train=64 --set num_val=8 > /dev/null
"$py" benchmarks/cuda_paths.py "$scratch/toy" "$scratch/runs" > "$out/cuda_paths.txt"
rm -rf "$scratch"
gpus=$("$py" -c "import torch; print(torch.cuda.device_count())")
if [ "$gpus" -gt 1 ]; then
  ranks=$(for n in 1 2 4 8; do if [ "$n" -le "$gpus" ]; then printf '%s ' "$n"; fi; done)
  # shellcheck disable=SC2086
  "$py" benchmarks/ddp_scaling.py --ranks $ranks --batch-per-rank 4 --json > "$out/ddp_scaling.json"
fi
step --channels-last --compile
"$py" -m spadekit.cli.main perf --device cuda --batch 32 --json "$out/perf.json" > "$out/perf.txt"
