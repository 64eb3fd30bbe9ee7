#!/usr/bin/env bash
# Train the bundled support assistant with tinylm's own toolchain (resumes from its checkpoint).
#   bash recipes/support-assistant/train.sh /path/to/shared/data /path/to/workdir
set -euo pipefail
data=${1:?the shared/data folder}
work=${2:?a work folder outside the repository}
here=$(cd "$(dirname "$0")" && pwd)
python "$here/prepare_data.py" --data "$data" --out "$work/support-data"
exec tinylm train "$work/support-data/train.jsonl" --val-data "$work/support-data/validation.jsonl" \
  --out "$work/support-assistant" --family llama --hidden-size 256 --layers 6 --heads 8 --kv-heads 4 \
  --intermediate-size 768 --context 512 --vocab-size 8192 --steps 1200 --batch-size 16 --lr 0.003 \
  --warmup 50 --eval-every 100 --checkpoint-every 20 --threads 2 --autocast bf16 --seed 0 --keep-checkpoint
