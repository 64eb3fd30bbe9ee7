#!/bin/bash
# Warm load and decode of two checkouts side by side: `tinylm bench --json` of checkout A and checkout B on one
# model, row by row (onnx and openvino at fp32 and int8), A first in even rounds and B first in odd ones, each
# checkout with its own TINYLM_HOME (its first load of a row converts). One line a measurement:
#   round checkout backend precision warm_load_s decode_tok_s cold_load_s
# usage: benchmarks/ab_commits.sh MODEL A_DIR B_DIR [ROUNDS]   (PYTHON: the interpreter, default python)
# e.g.  git worktree add /tmp/base <commit>; python -m benchmarks.peers --build-model /tmp/smollm2
#       nice -n 5 benchmarks/ab_commits.sh /tmp/smollm2 "$PWD" /tmp/base 2
set -euo pipefail
MODEL=$1; A=$2; B=$3; ROUNDS=${4:-2}; PY=${PYTHON:-python}; HOMES=$(mktemp -d)
FIELDS='import json,sys; r=json.load(sys.stdin)["rows"][0]; print(r["warm_load_s"], r["decode_tps"], r["cold_load_s"])'
for round in $(seq 0 $((ROUNDS - 1))); do
  for row in "onnx fp32" "onnx int8" "openvino fp32" "openvino int8"; do
    read -r backend precision <<< "$row"
    sides="$A $B"; [ $((round % 2)) = 1 ] && sides="$B $A"
    for side in $sides; do
      path=$side; for b in torch onnx openvino coreml; do path=$path:$side/backends/$b; done
      home=$HOMES/$(echo "$side" | tr / _)
      figures=$(cd "$side" && PYTHONPATH=$path TINYLM_HOME=$home TINYLM_NUM_THREADS=2 "$PY" -m tinylm.cli bench \
        "$MODEL" --json --backends "$backend" --precisions "$precision" --prompt-tokens 32 --new-tokens 64 --runs 3 \
        | "$PY" -c "$FIELDS")
      echo "$round $side $backend $precision $figures"
    done
  done
done
rm -rf "$HOMES"
