#!/usr/bin/env bash
# One GPU session, run from the repository root on a CUDA machine that has torch, numpy, onnx,
# onnxruntime and OpenCV but none of this project's other dependencies (no rclpy, no rosbags):
#   1. inference: torch CUDA fp32/fp16 (and ONNX Runtime CUDA/TensorRT when installed) against
#      the CPU, fp16 throughput at batch 16 and batch-1 latency at 640x640;
#   2. training: a short AMP (bf16) run at batch 16 and 640x640, images/s;
#   3. the node processing path: 4 x 720p cameras at 30 Hz through batcher, detector, tracker;
#   4. distillation: train demo weights on a prepared pseudo-labelled dataset (DATASET), then
#      the held-out report; the fp16 weights come back in 15 MiB pieces (join with cat).
# Every stage has its own time limit so one slow stage cannot eat the others' time.
# Usage: OUT=/path DATASET=.gpu_data/vtest_pseudo bash benchmarks/gpu_session.sh
set -u
OUT=${OUT:-/tmp/gpu_session}
DATASET=${DATASET:-.gpu_data/vtest_pseudo}
DISTILL_SECONDS=${DISTILL_SECONDS:-240}
DISTILL_EPOCHS=${DISTILL_EPOCHS:-40}
DISTILL_SIZE=${DISTILL_SIZE:-384}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, onnxruntime as ort; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'ort', ort.__version__, ort.get_available_providers())" | tee -a "$OUT/gpu.txt"

echo "=== 1. inference check ==="
timeout 180 python3 benchmarks/gpu_check.py --out "$OUT/gpu_check.json" > "$OUT/gpu_check.log" 2>&1
echo "rc=$?"; tail -n 25 "$OUT/gpu_check.log"

echo "=== 2. training throughput ==="
timeout 90 python3 benchmarks/gpu_train_check.py --steps 30 --out "$OUT/gpu_train.json" > "$OUT/gpu_train.log" 2>&1
echo "rc=$?"; tail -n 8 "$OUT/gpu_train.log"

echo "=== 3. node processing path, 4 x 720p at 30 Hz (no DDS) ==="
timeout 60 python3 benchmarks/gpu_pipeline_check.py --seconds 20 --out "$OUT/gpu_pipeline.json" > "$OUT/gpu_pipeline.log" 2>&1
echo "rc=$?"; tail -n 22 "$OUT/gpu_pipeline.log"

echo "=== 4. distillation (demo weights) ==="
WEIGHTS=/tmp/distill/togethernet_vtest_${DISTILL_SIZE}.pt
timeout "$DISTILL_SECONDS" python3 -m togethernet_ros.cli distill --dataset "$DATASET" \
  --device cuda --amp bf16 --batch-size 32 --workers 12 --input-size "$DISTILL_SIZE" \
  --epochs "$DISTILL_EPOCHS" --train-override train.lr=0.04 --output /tmp/distill --weights-out "$WEIGHTS" \
  > "$OUT/distill.log" 2>&1
echo "rc=$?"; grep -v "it/s\]" "$OUT/distill.log" | tail -n 30
if [ ! -f "$WEIGHTS" ] && [ -f /tmp/distill/train/last.pt ]; then
  # Stopped by its time limit: keep the last epoch's weights (fp16, no optimizer state).
  python3 - "$WEIGHTS" <<'PY'
import sys, torch
from togethernet_ros.model.checkpoint import load_checkpoint, save_checkpoint
loaded = load_checkpoint("/tmp/distill/train/last.pt")
save_checkpoint(sys.argv[1], loaded.model.half(), loaded.class_names,
                metadata={**loaded.metadata, "note": "last epoch before the time limit"})
PY
fi
if [ -f "$WEIGHTS" ]; then
  split -b 15M -d "$WEIGHTS" "$OUT/weights.part"
  cp "${WEIGHTS%.pt}.md" "$OUT/model_card.md" 2>/dev/null
  cp /tmp/distill/*.json /tmp/distill/*.png "$OUT/" 2>/dev/null
  sha256sum "$WEIGHTS" | tee "$OUT/weights.sha256"
fi
ls -la "$OUT"
