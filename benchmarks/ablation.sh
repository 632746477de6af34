#!/usr/bin/env bash
# Ablation of the training losses at equal budget: distillation only, triplet only, both.
# Each run: same cache, seed, schedule and number of steps; exported (BatchNorm re-estimated)
# and measured on LFW pairsDevTest.txt (people never trained on) in inference mode.
#   benchmarks/ablation.sh [CACHE] [STEPS_PER_EPOCH] [EPOCHS] [SHARDS]
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${1:-.cache/train/crops-v1}
STEPS=${2:-100}
EPOCHS=${3:-2}
SHARDS=${4:-0-59}
OUT=.cache/train/ablation
DATA=${FACETAGS_SHARED_DATA:-../shared/data}
mkdir -p "$OUT"
run() {  # name, extra fit options...
  local name=$1; shift
  python -m facetags train fit --cache "$CACHE" --run "$OUT/$name" --epochs "$EPOCHS" \
    --steps-per-epoch "$STEPS" --shards "$SHARDS" --seed 0 "$@"
  python -m facetags train export --run "$OUT/$name" --which last --out "$OUT/$name" \
    --id "ablation-$name" --recalibrate-bn 50
}
run distill-only --triplet-weight 0
run triplet-only --distill-weight 0
run both
python benchmarks/verify.py --pairs "$DATA/lfw/protocol/pairsDevTest.txt" --images "$DATA/lfw/images" \
  --onnx "$OUT/distill-only/ablation-distill-only.onnx" \
  --onnx "$OUT/triplet-only/ablation-triplet-only.onnx" \
  --onnx "$OUT/both/ablation-both.onnx"
