#!/usr/bin/env bash
# Set up the environment (idempotent), then run the whole pipeline on the generated demo data
# set (tools/run_demo.py). Extra arguments go to tools/run_demo.py, e.g. --work-dir DIR.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$(bash "$ROOT/tools/setup_env.sh" | tail -n 1)"
cd "$ROOT"
exec "$PY" tools/run_demo.py "$@"
