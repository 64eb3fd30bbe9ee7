#!/usr/bin/env bash
# Train the bundled support assistant with tinylm's own toolchain, in three stages, each resumed from its
# checkpoint when rerun and skipped once finished:
#   1. pretraining on both corpora (bitext + SGD dialogues);
#   2. fine-tuning on the bitext support chats and triage records (loss on the assistant's turns);
#   3. fine-tuning on the natural mixture (augment.py: emails with context and order numbers, second turns,
#      polite declines, triage records, plain-text replies) plus the bitext chats and triage records.
#   bash recipes/support-assistant/train.sh /path/to/shared/data /path/to/workdir
set -euo pipefail
data=${1:?the shared/data folder}
work=${2:?a work folder outside the repository}
here=$(cd "$(dirname "$0")" && pwd)
run=(--max-length 512 --batch-size 16 --checkpoint-every 50 --threads 2 --autocast bf16 --seed 0)
python "$here/prepare_data.py" --data "$data" --out "$work/support-data"
cd "$work"
[ -f support-assistant-base/model.safetensors ] || tinylm train support-data/train.jsonl \
  --val-data support-data/validation.jsonl --out support-assistant-base --family llama --hidden-size 256 \
  --layers 6 --heads 8 --kv-heads 4 --intermediate-size 768 --context 512 --vocab-size 8192 --steps 1200 \
  --batch-size 16 --lr 0.003 --warmup 50 --eval-every 100 --checkpoint-every 20 --threads 2 --autocast bf16 \
  --seed 0 --keep-checkpoint
[ -f support-assistant-chat/model.safetensors ] || tinylm finetune support-assistant-base \
  support-data/bitext-train.jsonl support-data/triage-train.jsonl --val-data support-data/bitext-validation.jsonl \
  support-data/triage-validation.jsonl --out support-assistant-chat --steps 600 --lr 0.001 --warmup 20 \
  --eval-every 100 "${run[@]}"
tinylm finetune support-assistant-chat support-data/sft-train.jsonl --val-data support-data/sft-validation.jsonl \
  --out support-assistant --steps 1250 --lr 0.001 --warmup 30 --eval-every 500 "${run[@]}"
