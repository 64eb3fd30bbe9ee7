#!/usr/bin/env bash
# Train the bundled support assistant with tinylm's own toolchain, in four stages, each resumed from its
# checkpoint when rerun and skipped once finished, and its intent router:
#   1. pretraining on both corpora (bitext + SGD dialogues);
#   2. fine-tuning on the bitext support chats and triage records (loss on the assistant's turns);
#   3. fine-tuning on the natural mixture (augment.py: emails with context and order numbers, second turns,
#      polite declines, triage records, plain-text replies) plus the bitext chats and triage records;
#   4. fine-tuning on routed chats (the message ends with a note of its intent, examples/routing.py; replies keep
#      the {{Order Number}} placeholder) with some of stage 3's kinds: 500 steps at lr 1e-3, then 300 at 5e-4;
#   then the router (a linear layer over the bundled embedder) into examples/data/intent_router.safetensors.
#   bash recipes/support-assistant/train.sh /path/to/shared/data /path/to/workdir
set -euo pipefail
data=${1:?the shared/data folder}
work=${2:?a work folder outside the repository}
here=$(cd "$(dirname "$0")" && pwd)
run=(--max-length 512 --batch-size 16 --checkpoint-every 50 --threads 2 --autocast bf16)
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
  --eval-every 100 "${run[@]}" --seed 0
[ -f support-assistant-natural/model.safetensors ] || tinylm finetune support-assistant-chat \
  support-data/sft-train.jsonl --val-data support-data/sft-validation.jsonl --out support-assistant-natural \
  --steps 1250 --lr 0.001 --warmup 30 --eval-every 500 "${run[@]}" --seed 0
[ -f support-assistant-routed/model.safetensors ] || tinylm finetune support-assistant-natural \
  support-data/routed-train.jsonl --val-data support-data/routed-validation.jsonl --out support-assistant-routed \
  --steps 500 --lr 0.001 --warmup 20 --eval-every 250 "${run[@]}" --seed 0
tinylm finetune support-assistant-routed support-data/routed-train.jsonl \
  --val-data support-data/routed-validation.jsonl --out support-assistant --steps 300 --lr 0.0005 --warmup 10 \
  --eval-every 150 "${run[@]}" --seed 1
cd - > /dev/null
python "$here/router.py" --data "$data"
