#!/usr/bin/env bash
# A small decoder trained from scratch on tinyshakespeare, pruned by a third of its layers (6 -> 4, by block
# influence) and healed by distillation from the unpruned model; perplexity on the held-out validation split
# before pruning, after pruning and after healing. Usage:
#   bash recipes/toolchain/decoder_prune.sh WORK DATA
# WORK: a folder for the models it trains; DATA: the shared/data folder (tinyshakespeare/ in it).
set -euo pipefail
export TINYLM_NUM_THREADS=2  # tinylm eval loads models through tinylm.load
WORK=${1:?a work folder for the models, e.g. build/decoder}
DATA=${2:?the shared/data folder}
T=$DATA/tinyshakespeare
mkdir -p "$WORK"

time tinylm train "$T/train.jsonl" --val-data "$T/validation.jsonl" --out "$WORK/base" --overwrite \
    --family llama --size small --layers 6 --context 128 --vocab-size 4096 \
    --steps 600 --batch-size 16 --lr 3e-3 --warmup 30 --eval-every 200 --checkpoint-every 100 --threads 2 --seed 0
time tinylm prune "$WORK/base" --out "$WORK/pruned" --overwrite --num-layers 4 \
    --calibration-data "$T/train.jsonl" --calibration-samples 64 --threads 2
time tinylm prune "$WORK/base" --out "$WORK/healed" --overwrite --num-layers 4 \
    --calibration-data "$T/train.jsonl" --calibration-samples 64 \
    --heal-data "$T/train.jsonl" --steps 200 --batch-size 16 --lr 1e-3 --warmup 20 --max-length 128 \
    --temperature 2 --alpha 0.5 --eval-every 100 --threads 2 --seed 0
for model in base pruned healed; do
    tinylm eval "$WORK/$model" --backend torch --data "$T/validation.jsonl" --write-card
done
