#!/usr/bin/env bash
# Train the bundled support assistant with tinylm's own toolchain: pretraining on both corpora, then
# fine-tuning on the bitext support chats and triage records (loss on the assistant's turns). Each stage resumes from its
# checkpoint when rerun; a finished stage is skipped.
#   bash recipes/support-assistant/train.sh /path/to/shared/data /path/to/workdir
set -euo pipefail
data=${1:?the shared/data folder}
work=${2:?a work folder outside the repository}
here=$(cd "$(dirname "$0")" && pwd)
python "$here/prepare_data.py" --data "$data" --out "$work/support-data"
[ -f "$work/support-assistant-base/model.safetensors" ] || tinylm train "$work/support-data/train.jsonl" --val-data "$work/support-data/validation.jsonl" \
  --out "$work/support-assistant-base" --family llama --hidden-size 256 --layers 6 --heads 8 --kv-heads 4 \
  --intermediate-size 768 --context 512 --vocab-size 8192 --steps 1200 --batch-size 16 --lr 0.003 \
  --warmup 50 --eval-every 100 --checkpoint-every 20 --threads 2 --autocast bf16 --seed 0 --keep-checkpoint
tinylm finetune "$work/support-assistant-base" "$work/support-data/bitext-train.jsonl" \
  "$work/support-data/triage-train.jsonl" --val-data "$work/support-data/bitext-validation.jsonl" \
  "$work/support-data/triage-validation.jsonl" --out "$work/support-assistant" --max-length 512 \
  --steps 600 --batch-size 16 --lr 0.001 --warmup 20 --eval-every 100 --checkpoint-every 50 --threads 2 \
  --autocast bf16 --seed 0
