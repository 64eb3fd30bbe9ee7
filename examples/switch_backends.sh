#!/usr/bin/env bash
# Run the same script (default: examples/quickstart.py) under every backend that can run here, one after another:
#   bash examples/switch_backends.sh [script.py]
# Each run prints the backend, device and speed it got. Backends that cannot run on this machine are listed by
# `tinylm backends` with the reason; none is replaced by another behind your back.
set -euo pipefail
script=${1:-$(dirname "$0")/quickstart.py}
backends=$(python - <<'PY'
import json, subprocess
out = subprocess.run(["tinylm", "backends", "--json"], capture_output=True, text=True, check=True).stdout
rows = json.loads(out)["backends"]
print(" ".join(r["name"] for r in rows if r["status"] == "available"))
PY
)
for backend in $backends; do
    echo "== TINYLM_BACKEND=$backend"
    TINYLM_BACKEND=$backend python "$script"
done
